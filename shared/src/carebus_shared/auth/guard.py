"""The one app-wide guard: who is calling (API key or bearer JWT), may they call this route
(its declared scopes), and are they within their rate. 401 / 403 / 429 problem bodies.

Keys are looked up by their SHA-256 in ``carebus_auth.client`` and cached in process for
``cache_s`` seconds, refusals too: a revoked key stops working within that bound.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler

from carebus_shared import audit
from carebus_shared.auth import store
from carebus_shared.auth.jwt_bearer import InvalidToken, JwtVerifier, looks_like_jwt
from carebus_shared.auth.keys import PREFIX, key_hash
from carebus_shared.auth.limits import TokenBuckets, retry_after
from carebus_shared.auth.principal import Principal, address_of, remember
from carebus_shared.auth.scopes import OPT_PUBLIC, OPT_SCOPES

# The console keeps the person's key in this cookie (HttpOnly, SameSite=Strict); only
# routes marked ``opt={"session": True}`` accept it, and unsafe methods need the CSRF token.
SESSION_COOKIE: Final = "carebus_console"
OPT_SESSION: Final = "session"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_CACHED: Final = 10_000
_CHALLENGE: Final = 'Bearer realm="carebus"'


@dataclass(frozen=True, slots=True)
class AuthSettings:
    cache_s: float = 10.0
    rate_per_s: float = 100.0
    burst: int = 200
    jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""


def csrf_token(key: str) -> str:
    """The console's CSRF token for a session: derived from its key, so nothing is stored."""
    return hmac.new(key_hash(key), b"carebus-console-csrf", hashlib.sha256).hexdigest()


def _unauthorized(detail: str, error: str | None = None) -> NotAuthorizedException:
    challenge = f'{_CHALLENGE}, error="{error}"' if error else _CHALLENGE
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


def bearer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


class HttpAuth:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        settings: AuthSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self.settings = settings
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self.buckets = TokenBuckets(clock)
        self._jwt = (
            JwtVerifier(
                settings.jwks_url, settings.jwt_issuer, settings.jwt_audience, settings.cache_s
            )
            if settings.jwks_url
            else None
        )

    async def _client_for_key(self, key: str) -> Principal | None:
        digest = key_hash(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool().acquire() as conn:
            client = await store.by_hash(conn, digest)
        found = (
            None
            if client is None
            else Principal(
                client.name, frozenset(client.scopes), "api_key", client.rate_per_s, client.burst
            )
        )
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()  # a flood of bad keys must not grow memory
        self._cache[digest] = (now + self.settings.cache_s, found)
        return found

    async def authenticate(self, credential: str) -> Principal:
        """The client a credential names; raises the 401 otherwise."""
        if credential.startswith(PREFIX):
            principal = await self._client_for_key(credential)
            if principal is None:
                raise _unauthorized("the API key is unknown or revoked", "invalid_token")
            return principal
        if self._jwt is not None and looks_like_jwt(credential):
            try:
                return await self._jwt.verify(credential)
            except InvalidToken as exc:
                raise _unauthorized(str(exc), "invalid_token") from None
        raise _unauthorized("the credential is neither an API key nor an accepted token")

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        opt = handler.opt
        if opt.get(OPT_PUBLIC):
            return
        credential = bearer_of(connection)
        from_cookie = False
        if credential is None and opt.get(OPT_SESSION):
            credential = connection.cookies.get(SESSION_COOKIE) or None
            from_cookie = credential is not None
        if credential is None:
            raise _unauthorized("this route needs a credential: Authorization: Bearer <key>")
        principal = await self.authenticate(credential)
        rate = principal.rate_per_s or self.settings.rate_per_s
        wait_s = self.buckets.take(principal.name, rate, principal.burst or self.settings.burst)
        if wait_s > 0:
            raise TooManyRequestsException(
                detail=f"over this client's rate of {rate:g} requests a second (per replica)",
                headers={"Retry-After": retry_after(wait_s)},
            )
        required = tuple(opt.get(OPT_SCOPES, ()))
        missing = [scope for scope in required if scope not in principal.scopes]
        if missing:
            raise PermissionDeniedException(
                detail=f"this route needs scope {', '.join(missing)}",
                extra={"required_scopes": list(required)},
            )
        if from_cookie and connection.scope.get("method", "GET") not in _SAFE_METHODS:
            await _check_csrf(connection, credential)
        remember(connection, principal)
        # "From where" on the audit entries this request records.
        audit.bind_client_address(address_of(connection, principal))


async def _check_csrf(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> None:
    given = connection.headers.get(CSRF_HEADER, "")
    if not given and isinstance(connection, Request):
        form = await connection.form()  # parsed once; the route reads the same form
        given = str(form.get(CSRF_FIELD, ""))
    if not hmac.compare_digest(given.encode(), csrf_token(key).encode()):
        raise PermissionDeniedException(detail="the form's CSRF token is missing or stale")
