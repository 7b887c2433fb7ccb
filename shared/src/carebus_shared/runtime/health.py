"""Liveness, readiness and metrics endpoints, the same in every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from carebus_shared.auth.scopes import METRICS_READ, PUBLIC, requires

Check = Callable[[], Awaitable[None]]


async def run_checks(checks: Mapping[str, Check], timeout_s: float) -> dict[str, str]:
    """Run each check with a timeout; 'ok' or the reason it failed."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                await check()
            return "ok"
        except TimeoutError:
            return f"timed out after {timeout_s}s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def health_routes(
    checks: Mapping[str, Check], timeout_s: float, registry: CollectorRegistry
) -> list[HTTPRouteHandler]:
    @get("/health/live", tags=["health"], sync_to_thread=False, **PUBLIC)
    def live() -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @get("/health/ready", tags=["health"], **PUBLIC)
    async def ready() -> Response[dict[str, object]]:
        """NATS and PostgreSQL answer within the probe timeout; 503 otherwise."""
        results = await run_checks(checks, timeout_s)
        ok = all(v == "ok" for v in results.values())
        body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": results}
        return Response(body, status_code=200 if ok else 503)

    @get(
        "/metrics",
        tags=["health"],
        sync_to_thread=False,
        include_in_schema=False,
        **requires(METRICS_READ),
    )
    def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [live, ready, metrics]
