"""The sync tracker's use case: a batch from one stream becomes rows of the tracker's
tables in one transaction, then every message is acknowledged.

The tracker is an observer: a message it cannot decode is the pipeline's business (the
stage that reads it records the exception), so it is counted and acknowledged, not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import asyncpg
from nats.aio.msg import Msg

from carebus_contracts.registry import REGISTRY, ContractDecodeError, UnknownContractError
from carebus_ops.adapters import tracker_store
from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.domain.projection import Projection, Where
from carebus_shared.dependencies import DEPENDENCY_ERRORS

log = logging.getLogger("carebus.ops.tracker")

RETRY_S = 2.0


def project(stream: str, msgs: Sequence[Msg]) -> tuple[Projection, int]:
    """The batch's projection, and how many messages did not decode."""
    projection = Projection()
    undecodable = 0
    for msg in msgs:
        try:
            event = REGISTRY.decode_message(msg.subject, msg.data, msg.headers)
        except (ContractDecodeError, UnknownContractError, ValueError):
            undecodable += 1
            continue
        projection.add(event, Where(stream, int(msg.metadata.sequence.stream), msg.subject))
    return projection, undecodable


class Tracker:
    def __init__(self, pool: Callable[[], asyncpg.Pool], metrics: OpsMetrics) -> None:
        self._pool = pool
        self._metrics = metrics

    async def handle(self, stream: str, msgs: Sequence[Msg]) -> None:
        projection, undecodable = project(stream, msgs)
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                await tracker_store.store(conn, projection)
        except (*DEPENDENCY_ERRORS, asyncpg.PostgresError) as exc:
            # Handed back for a later try; nothing in the pipeline waits for the tracker.
            log.warning("batch not stored (%s); handed back", type(exc).__name__)
            for msg in msgs:
                await msg.nak(delay=RETRY_S)
            return
        # Acked only once stored: a crash in between redelivers the batch, which adds nothing.
        for msg in msgs:
            await msg.ack()
        self._metrics.tracker_events.labels(stream).inc(len(msgs))
        if undecodable:
            log.warning("events not decoded", extra={"stream": stream, "count": undecodable})
