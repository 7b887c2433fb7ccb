"""An adapter's MLLP listener, opened once the service is up and closed before it stops."""

from __future__ import annotations

import logging

from carebus_shared.config import IntakeSettings
from carebus_shared.mllp.metrics import MllpMetrics
from carebus_shared.mllp.server import (
    MllpHandler,
    MllpLimits,
    MllpPeers,
    MllpServer,
    parse_networks,
    server_tls_context,
)
from carebus_shared.runtime.service import ServiceRuntime

log = logging.getLogger("carebus.mllp")


def mllp_peers(settings: IntakeSettings) -> MllpPeers:
    """The listener's TLS and allow-list from the settings (docs/decisions/024)."""
    if bool(settings.mllp_tls_cert) != bool(settings.mllp_tls_key):
        raise ValueError("MLLP_TLS_CERT and MLLP_TLS_KEY go together")
    if settings.mllp_tls_client_ca and not settings.mllp_tls_cert:
        raise ValueError("MLLP_TLS_CLIENT_CA needs MLLP_TLS_CERT and MLLP_TLS_KEY")
    tls = (
        server_tls_context(
            settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_client_ca
        )
        if settings.mllp_tls_cert
        else None
    )
    return MllpPeers(tls=tls, allowed=parse_networks(settings.mllp_allowed_peers))


def listen_once_started(
    runtime: ServiceRuntime, handler: MllpHandler, settings: IntakeSettings
) -> MllpServer:
    """The listener, bound to the runtime's lifecycle: it accepts frames only once JetStream
    and PostgreSQL are up (an AA must be possible), and on shutdown in-flight messages finish
    their publish and get their ACK before the broker closes."""
    server = MllpServer(
        handler,
        host=settings.mllp_host,
        port=settings.mllp_port,
        limits=MllpLimits(
            max_message_bytes=settings.mllp_max_message_bytes,
            idle_timeout=settings.mllp_idle_timeout_s,
            # Longer than a publish may take, so a slow ack ends as "no ACK", not a hang.
            handler_timeout=max(30.0, 2 * settings.publish_timeout_s),
            message_deadline=settings.mllp_message_deadline_s,
            max_connections=settings.mllp_max_connections,
        ),
        metrics=MllpMetrics(runtime.registry),
        peers=mllp_peers(settings),
    )

    async def start() -> None:
        try:
            await server.start()
        except OSError:
            log.exception("MLLP listener cannot bind %s:%d", settings.mllp_host, settings.mllp_port)
            raise

    async def stop() -> None:
        await server.close(settings.shutdown_grace_s)

    runtime.on_started.append(start)
    runtime.on_stopping.append(stop)
    return server
