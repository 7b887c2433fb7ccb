"""Composition root of the ERP poster: the one place that wires its parts together."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from litestar import Litestar
from nats.js.errors import NotFoundError

from carebus_contracts.subjects import STREAM_ERP
from carebus_erp_poster.adapters.connectors import make_connector
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_erp_poster.entrypoints import http, subscribers
from carebus_erp_poster.handlers.common import Parts
from carebus_erp_poster.handlers.post_journals import PostJournals
from carebus_erp_poster.handlers.track_confirmations import TrackConfirmations
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import ERP_POSTER, TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings, *, after_commit: Callable[[], None] = lambda: None) -> Litestar:
    """The poster; ``after_commit`` runs after each posting commit, before the ack (tests
    inject a crash there: ``tests/erp_poster/fault_injection.py``)."""
    # httpx logs every request at INFO: thousands of lines an hour that the metrics say better.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    metrics = PosterMetrics(runtime.registry)

    connector = make_connector(settings, lambda: runtime.pool, metrics)

    async def publish(outgoing: Sequence[Outgoing]) -> None:
        await publish_confirmed(runtime.js, outgoing)

    async def fetch_original(seq: int) -> tuple[str, bytes, dict[str, str]] | None:
        try:
            msg = await runtime.js.get_msg(STREAM_ERP, seq)
        except NotFoundError:
            return None
        return msg.subject or "", msg.data or b"", {**(msg.headers or {})}

    spec = TOPOLOGY.consumer(ERP_POSTER)
    parts = Parts(
        lambda: runtime.pool,
        connector,
        metrics,
        publish,
        consumer=spec.durable,
        recheck_after_s=settings.confirm_poll_s,
    )
    poster = PostJournals(parts, max_deliveries=settings.max_deliveries, after_commit=after_commit)
    tracker = TrackConfirmations(parts, fetch_original, batch=settings.confirm_batch)

    subscribers.subscribe(runtime, poster, spec, settings)
    # A full batch of confirmations runs again at once: a backlog after an outage drains at
    # the ERP's pace, not the poll's.
    runtime.background.every("erp-confirmations", tracker.run_once, settings.confirm_poll_s)
    # Stopping: in-flight batches stop waiting for the ERP first, so they finish in time (the
    # background loops stop after this hook).
    runtime.on_stopping.append(connector.interrupt)
    return runtime.http_app(http.routes(lambda: runtime.pool))
