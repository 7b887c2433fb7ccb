"""Serve a service's Litestar app with uvicorn, with SIGTERM handled gracefully."""

from __future__ import annotations

import uvicorn
from litestar import Litestar

from carebus_shared.config import RuntimeSettings


def serve(app: Litestar, settings: RuntimeSettings) -> None:
    """Run until SIGTERM/SIGINT; uvicorn then runs the lifespan shutdown (drain, close)."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep our JSON logging
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
    uvicorn.Server(config).run()
