"""Serve a service's Litestar app with uvicorn, with SIGTERM handled gracefully."""

from __future__ import annotations

import signal

import uvicorn
from litestar import Litestar

from carebus_shared.config import RuntimeSettings


def _ignore(signum: int, frame: object) -> None:
    return None


def serve(app: Litestar, settings: RuntimeSettings) -> None:
    """Run until SIGTERM/SIGINT; uvicorn then runs the lifespan shutdown (drain, close).

    uvicorn re-raises the captured signal once shut down, through whatever handler was there
    before it: with the default handler a drained, clean stop would still die "by signal".
    A no-op handler lets the process exit 0, which is what orchestrators read as clean.
    """
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
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
