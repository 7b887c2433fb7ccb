"""The NATS connection every service uses: reconnects forever and reports its state.

nats-py's default gives up after 60 attempts two seconds apart, after which a service would
sit disconnected until restarted; we never give up, log each state change, and expose
``connected`` for the readiness probe.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.middlewares import AckPolicy
from faststream.nats import NatsBroker
from faststream.nats.prometheus import NatsPrometheusMiddleware
from prometheus_client import CollectorRegistry

from carebus_shared.jetstream.fetch_guard import install_fetch_timeout_guard

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


def make_broker(
    nats_url: str,
    service: str,
    state: ConnectionState,
    registry: CollectorRegistry,
    graceful_timeout_s: float,
    **extra: Any,
) -> NatsBroker:
    """A FastStream broker with carebus defaults.

    - reconnect forever (``max_reconnect_attempts=-1``);
    - never drop a failed message: FastStream's NATS default terminates a message on the
      first exception, ours nacks it so JetStream redelivers it (bounded by max_deliver, after
      which the advisory lands it in the exception store);
    - in-flight handlers get ``graceful_timeout_s`` to finish on shutdown.
    """
    install_fetch_timeout_guard()
    return NatsBroker(
        nats_url.split(","),
        name=service,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        disconnected_cb=state.on_disconnected,
        reconnected_cb=state.on_reconnected,
        error_cb=state.on_error,
        closed_cb=state.on_closed,
        graceful_timeout=graceful_timeout_s,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=[NatsPrometheusMiddleware(registry=registry, app_name=service)],
        logger=logging.getLogger(f"carebus.{service}.faststream"),
        **extra,
    )
