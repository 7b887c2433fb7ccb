"""Composition root of the ERP poster: the one place that wires its parts together."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from litestar import Litestar
from nats.js.errors import NotFoundError

from carebus_contracts.subjects import STREAM_ERP
from carebus_erp_poster.adapters.connectors import make_connector
from carebus_erp_poster.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_erp_poster.entrypoints.periodic import Periodic
from carebus_erp_poster.entrypoints.routes import journal_routes
from carebus_erp_poster.entrypoints.subscriber import consume_journals
from carebus_erp_poster.faults import KillAfterCommit
from carebus_erp_poster.handlers import PostJournals, TrackConfirmations
from carebus_erp_poster.metrics import PosterMetrics
from carebus_shared.exceptions.subscriber import exception_capture_router
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import ERP_POSTER, EXCEPTION_CAPTURE, TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings) -> Litestar:
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
    poster = PostJournals(
        lambda: runtime.pool,
        connector,
        metrics,
        publish,
        consumer=spec.durable,
        max_deliveries=settings.max_deliveries,
        recheck_after_s=settings.confirm_poll_s,
        after_commit=KillAfterCommit(settings.fault_kill_after_commit),
    )
    tracker = TrackConfirmations(
        lambda: runtime.pool,
        connector,
        metrics,
        publish,
        fetch_original,
        consumer=spec.durable,
        batch=settings.confirm_batch,
        recheck_after_s=settings.confirm_poll_s,
    )
    confirmations = Periodic("erp-confirmations", tracker.run_once, settings.confirm_poll_s)

    consume_journals(runtime, poster, spec, settings)
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
    runtime.on_started.append(confirmations.start)
    # Stopping: in-flight batches stop waiting for the ERP first, so they finish in time.
    runtime.on_stopping.append(connector.interrupt)
    runtime.on_stopping.append(confirmations.stop)
    return runtime.http_app(journal_routes(lambda: runtime.pool))
