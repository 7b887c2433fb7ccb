"""The NATS connection every service uses: reconnects forever and reports its state.

nats-py's default gives up after 60 attempts two seconds apart, after which a service would
sit disconnected until restarted; we never give up, log each state change, and expose
``connected`` for the readiness probe.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import nats
from faststream.middlewares import AckPolicy
from faststream.nats import NatsBroker
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.nats.security import NatsSecurity
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from carebus_shared.config import NatsTlsSettings
from carebus_shared.jetstream.fetch_guard import install_fetch_timeout_guard
from carebus_shared.settings import load_settings

log = logging.getLogger("carebus.nats")


class ConnectionState:
    """What the readiness probe needs to know about the NATS link."""

    def __init__(self) -> None:
        self.connected = False
        self.disconnects = 0

    async def on_disconnected(self) -> None:
        if self.connected:
            self.disconnects += 1
            log.warning("nats disconnected; reconnecting")
        self.connected = False

    async def on_reconnected(self) -> None:
        self.connected = True
        log.info("nats reconnected")

    async def on_error(self, exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_closed(self) -> None:
        self.connected = False
        log.info("nats connection closed")


def tls_context(settings: NatsTlsSettings) -> ssl.SSLContext | None:
    """The client's TLS context when a CA is configured (the server's certificate verified,
    host name included); this client's certificate too when given (mutual TLS)."""
    if not settings.nats_tls_ca:
        if settings.nats_tls_cert or settings.nats_tls_key:
            raise ValueError("NATS_TLS_CERT and NATS_TLS_KEY need NATS_TLS_CA")
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.nats_tls_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.nats_tls_cert or settings.nats_tls_key:
        if not (settings.nats_tls_cert and settings.nats_tls_key):
            raise ValueError("NATS_TLS_CERT and NATS_TLS_KEY go together")
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return context


def server_list(nats_url: str) -> list[str]:
    """NATS_URL's servers: one URL, or a cluster's comma-separated (nats-py takes a list)."""
    return [url.strip() for url in nats_url.split(",") if url.strip()]


async def connect(nats_url: str, **options: Any) -> Client:
    """nats.connect for the command-line tools, with the TLS of the NATS_TLS_* variables."""
    context = tls_context(load_settings(NatsTlsSettings, ""))
    if context is not None:
        options.setdefault("tls", context)
    return await nats.connect(server_list(nats_url), **options)


# Seconds the connection's drain may take once every handler has finished: only the
# subscriptions' last deliveries and the pending publishes are left by then.
DRAIN_TIMEOUT_S = 5


def make_broker(
    nats_url: str,
    service: str,
    state: ConnectionState,
    registry: CollectorRegistry,
    graceful_timeout_s: float,
    tls: ssl.SSLContext | None = None,
    **extra: Any,
) -> NatsBroker:
    """A FastStream broker with carebus defaults.

    - reconnect forever (``max_reconnect_attempts=-1``);
    - never drop a failed message: FastStream's NATS default terminates a message on the
      first exception, ours nacks it so JetStream redelivers it (bounded by max_deliver, after
      which the advisory lands it in the exception store);
    - in-flight handlers get ``graceful_timeout_s`` to finish on shutdown; the connection's
      drain after them ``DRAIN_TIMEOUT_S`` (nats-py's default, 30 s, alone can outlast the
      wait a test gives a stopping service: docs/decisions/032).
    """
    install_fetch_timeout_guard()
    return NatsBroker(
        server_list(nats_url),
        name=service,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        disconnected_cb=state.on_disconnected,
        reconnected_cb=state.on_reconnected,
        error_cb=state.on_error,
        closed_cb=state.on_closed,
        graceful_timeout=graceful_timeout_s,
        drain_timeout=DRAIN_TIMEOUT_S,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=[NatsPrometheusMiddleware(registry=registry, app_name=service)],
        logger=logging.getLogger(f"carebus.{service}.faststream"),
        security=NatsSecurity(ssl_context=tls) if tls is not None else None,
        **extra,
    )
