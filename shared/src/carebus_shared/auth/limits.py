"""Per-client token buckets (per replica) and a per-service cap on requests in flight."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

_MAX_CLIENTS: Final = 10_000  # buckets kept; beyond, the idlest (full) ones are dropped


class TokenBuckets:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up, one per request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def take(self, name: str, rate_per_s: float, burst: int) -> float:
        """0.0 when the request may go; else the seconds until a token is there."""
        now = self._clock()
        tokens, at = self._buckets.get(name, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate_per_s)
        if tokens >= 1.0:
            self._store(name, tokens - 1.0, now)
            return 0.0
        self._store(name, tokens, now)
        return (1.0 - tokens) / rate_per_s

    def _store(self, name: str, tokens: float, now: float) -> None:
        if name not in self._buckets and len(self._buckets) >= _MAX_CLIENTS:
            self._buckets.clear()  # a flood of names: everyone starts full again
        self._buckets[name] = (tokens, now)


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _problem_bytes(status: int, title: str, detail: str) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(body).encode()


class ConcurrencyCap:
    """ASGI middleware: at most ``limit`` HTTP requests in flight (the health probes not
    counted); beyond, 503 with Retry-After at once, before any work is done."""

    def __init__(self, app: ASGIApp, limit: int, retry_after_s: int = 1) -> None:
        self._app = app
        self._limit = limit
        self._retry_after = str(retry_after_s)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith("/health/"):
            await self._app(scope, receive, send)
            return
        if self.in_flight >= self._limit:
            await _refuse(send, self._retry_after, self._limit)
            return
        self.in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _refuse(send: Send, retry_after_s: str, limit: int) -> None:
    body = _problem_bytes(
        503, "Service Unavailable", f"more than {limit} requests in flight here; retry"
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after_s.encode()),
    ]
    start: Any = {"type": "http.response.start", "status": 503, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
