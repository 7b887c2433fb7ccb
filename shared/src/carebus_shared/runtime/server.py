"""Serve a service's Litestar app with uvicorn, with SIGTERM handled gracefully."""

from __future__ import annotations

import signal

import uvicorn
from litestar import Litestar

from carebus_shared.config import RuntimeSettings
from carebus_shared.settings import SettingsError


def _ignore(signum: int, frame: object) -> None:
    return None


def tls_files(settings: RuntimeSettings) -> tuple[str | None, str | None]:
    """HTTPS when CAREBUS_<SERVICE>_TLS_CERT and _TLS_KEY name PEM files; one alone is an
    error (a half-configured listener must not quietly serve plain HTTP)."""
    # Tools served the same way (the ERP sandbox) may have settings without these fields.
    cert, key = getattr(settings, "tls_cert", ""), getattr(settings, "tls_key", "")
    if bool(cert) != bool(key):
        raise SettingsError("set both TLS_CERT and TLS_KEY (PEM paths), or neither")
    return cert or None, key or None


def serve(app: Litestar, settings: RuntimeSettings) -> None:
    """Run until SIGTERM/SIGINT; uvicorn then runs the lifespan shutdown (drain, close).

    uvicorn re-raises the captured signal once shut down, through whatever handler was there
    before it: with the default handler a drained, clean stop would still die "by signal".
    A no-op handler lets the process exit 0, which is what orchestrators read as clean.
    """
    cert, key = tls_files(settings)
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
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
    uvicorn.Server(config).run()
