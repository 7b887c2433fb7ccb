"""Who is calling: the authenticated client a route acts for, and the actor it records."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Final

from litestar.connection import ASGIConnection

from carebus_shared.auth.scopes import ACTOR_DELEGATE

# Sent by a client holding actor:delegate (the ops console) to name the person it acts for,
# and the address that person's request came from (what the audit records as "from where").
ON_BEHALF_HEADER: Final = "X-Carebus-On-Behalf-Of"
ON_BEHALF_ADDRESS_HEADER: Final = "X-Carebus-On-Behalf-Address"
_STATE_KEY: Final = "carebus_principal"
MAX_ACTOR: Final = 200


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]
    kind: str  # api_key | jwt
    rate_per_s: float | None = None
    burst: int | None = None


def remember(connection: ASGIConnection[Any, Any, Any, Any], principal: Principal) -> None:
    connection.scope.setdefault("state", {})[_STATE_KEY] = principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The client the guard authenticated; a route marked public has none (RuntimeError)."""
    found = connection.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(found, Principal):
        raise RuntimeError("no authenticated client on this request")
    return found


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The authenticated client's name; for a delegating client (the console), the person
    it names. Never a header an ordinary client sets about itself."""
    principal = principal_of(connection)
    if ACTOR_DELEGATE in principal.scopes:
        person = connection.headers.get(ON_BEHALF_HEADER, "").strip()
        if person and person.isprintable():
            return person[:MAX_ACTOR]
    return principal.name


def address_of(connection: ASGIConnection[Any, Any, Any, Any], principal: Principal) -> str | None:
    """Where the request comes from: the peer; for a delegating client (the console), the
    address of the person it acts for, when it sends one (an IP address, nothing else)."""
    peer = connection.client.host if connection.client else None
    if ACTOR_DELEGATE not in principal.scopes:
        return peer
    forwarded = connection.headers.get(ON_BEHALF_ADDRESS_HEADER, "").strip()
    try:
        return str(ipaddress.ip_address(forwarded)) if forwarded else peer
    except ValueError:
        return peer
