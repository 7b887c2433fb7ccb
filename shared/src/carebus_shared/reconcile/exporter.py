"""The scheduled reconciliation's ``/metrics``, behind the same credentials as every service's
(an API key or bearer token with the ``metrics:read`` scope; docs/decisions/023).

Served by uvicorn inside the run loop's event loop; the loop's own SIGTERM/SIGINT handling
stays in charge, so uvicorn is kept from installing signal handlers of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator

import asyncpg
import uvicorn
from litestar import Litestar
from prometheus_client import CollectorRegistry

from carebus_shared.auth.guard import AuthSettings, HttpAuth
from carebus_shared.http.headers import SecurityHeaders
from carebus_shared.http.problems import EXCEPTION_HANDLERS
from carebus_shared.runtime.health import health_routes

# The exporter has no dependencies to probe: ready once it answers.
_PROBE_TIMEOUT_S = 1.0
_START_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the reconciliation loop handles SIGTERM/SIGINT and stops us


def metrics_app(registry: CollectorRegistry, auth: HttpAuth) -> Litestar:
    return Litestar(
        route_handlers=health_routes({}, _PROBE_TIMEOUT_S, registry),
        logging_config=None,
        exception_handlers=EXCEPTION_HANDLERS,
        guards=[auth.guard],
        middleware=[SecurityHeaders],
        openapi_config=None,
    )


@contextlib.asynccontextmanager
async def serving_metrics(
    database_url: str,
    host: str,
    port: int,
    registry: CollectorRegistry,
    settings: AuthSettings | None = None,
) -> AsyncIterator[int]:
    """Serve ``/metrics`` (and ``/health/*``) on ``host:port`` while the block runs; yields
    the port bound (``port`` 0 picks a free one). Credentials are checked against the
    client store in ``database_url``."""
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    auth = HttpAuth(lambda: pool, settings or AuthSettings())
    config = uvicorn.Config(
        metrics_app(registry, auth),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="reconcile-metrics")
    try:
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not server.started:  # bounded by the timeout
                if task.done():
                    task.result()  # the bind failed: raise why
                await asyncio.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, _START_TIMEOUT_S)
        await pool.close()
