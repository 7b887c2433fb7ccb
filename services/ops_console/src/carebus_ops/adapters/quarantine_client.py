"""HTTP client of the validator's quarantine API (the console's quarantine page).

The validator owns the quarantine (its tables, its lock, the release rules); the console
only calls its routes: ``GET /v1/quarantine``, ``GET /v1/quarantine/{id}``,
``POST /v1/quarantine/{id}/release`` and ``POST /v1/quarantine/{id}/discard``, with the
console's own key (it holds actor:delegate) naming the person who acts (the validator
records them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import httpx

from carebus_shared.auth.client import acting_for, bearer

log = logging.getLogger(__name__)

MAX_PAGE: Final = 200


class QuarantineUnavailable(RuntimeError):
    """The validator did not answer (down, or too slow)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The validator's problem answer (4xx): its title and detail, never a payload."""

    status: int
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class ParkedPage:
    items: list[dict[str, Any]]
    next_cursor: int | None


class QuarantineClient:
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        service_key: str | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = service_key
        # Creating the client opens nothing; connections are made on the first request.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, actor: str | None = None, **kwargs: Any
    ) -> Any | Refused:
        headers = acting_for(self._key, actor) if actor else bearer(self._key)
        try:
            reply = await self._http.request(
                method, f"{self._base}{path}", headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            log.warning("the validator is unreachable", extra={"error": type(exc).__name__})
            raise QuarantineUnavailable("the masterdata validator is unreachable") from exc
        if reply.status_code >= 500:
            raise QuarantineUnavailable(f"the masterdata validator answered {reply.status_code}")
        try:
            body = reply.json()
        except ValueError:
            body = {}
        if reply.status_code >= 400:
            body = body if isinstance(body, dict) else {}
            return Refused(
                reply.status_code, str(body.get("title", "refused")), str(body.get("detail", ""))
            )
        return body

    async def page(
        self,
        *,
        site: str | None = None,
        reason: str | None = None,
        entity_key: str | None = None,
        cursor: int | None = None,
        limit: int = 100,
    ) -> ParkedPage | Refused:
        params: dict[str, Any] = {"limit": max(1, min(limit, MAX_PAGE))}
        for name, value in (("site", site), ("reason", reason), ("entity_key", entity_key)):
            if value:
                params[name] = value
        if cursor is not None:
            params["cursor"] = cursor
        body = await self._call("GET", "/v1/quarantine", params=params)
        if isinstance(body, Refused):
            return body
        return ParkedPage(list(body.get("items", [])), body.get("next_cursor"))

    async def release(self, parked_id: int, actor: str) -> dict[str, Any] | Refused:
        body = await self._call("POST", f"/v1/quarantine/{parked_id}/release", actor)
        return body if isinstance(body, Refused) else dict(body)

    async def discard(self, parked_id: int, actor: str, note: str) -> dict[str, Any] | Refused:
        body = await self._call(
            "POST", f"/v1/quarantine/{parked_id}/discard", actor, json={"note": note}
        )
        return body if isinstance(body, Refused) else dict(body)
