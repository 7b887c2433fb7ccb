"""Subscribers: the journal consumer (fetch a batch, keep it alive, run the use case) and the
poster's share of JetStream advisories into the exception store."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_erp_poster.config import Settings
from carebus_erp_poster.domain.journals import STAGE
from carebus_erp_poster.handlers.post_journals import PostJournals
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.keepalive import kept_in_progress
from carebus_shared.jetstream.topology import ConsumerSpec
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(
    runtime: ServiceRuntime, poster: PostJournals, spec: ConsumerSpec, settings: Settings
) -> None:
    async def on_journals(msgs: Sequence[Msg]) -> None:
        async with kept_in_progress(msgs, settings.ack_keepalive_s):
            await runtime.run_stage_batch(STAGE, msgs, poster.handle)

    # Pullers on the one durable, each a batch at a time: like replicas sharing it. Only
    # for a connector that posts in the inbox's transaction (the ledger): with a remote ERP
    # a crash after one batch's commit would catch another between the ERP's answer and its
    # record, and that batch would reach the ERP a second time (deduplicated by its key).
    parallel = settings.parallel_batches if poster.connector.atomic_with_inbox else 1
    for _ in range(parallel):
        runtime.consume(spec, on_journals, settings.batch_size, settings.batch_wait_s)
    capture_exceptions(runtime)
