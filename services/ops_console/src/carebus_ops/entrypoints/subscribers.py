"""The tracker's own durables, one per stream (thin: each batch goes to the tracker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg

from carebus_ops.handlers.track import Tracker
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.topology import OPS_TRACKED_STREAMS, TOPOLOGY, ops_tracker
from carebus_shared.runtime.service import ServiceRuntime


def tracker_batches(
    tracker: Tracker, stream: str, batch_size: int, linger_s: float
) -> Callable[[Sequence[Msg]], Awaitable[None]]:
    """Each batch to the tracker; after a batch short of ``batch_size`` (the tracker is
    keeping up) it waits ``linger_s`` before the next fetch, so what arrives meanwhile is
    stored in one batch rather than in many small ones (docs/decisions/031)."""

    async def on_batch(msgs: Sequence[Msg]) -> None:
        await tracker.handle(stream, msgs)
        if len(msgs) < batch_size:
            await asyncio.sleep(linger_s)

    return on_batch


def subscribe(
    runtime: ServiceRuntime, tracker: Tracker, batch_size: int, max_wait_s: float, linger_s: float
) -> list[StageConsumer]:
    consumers = []
    for stream in OPS_TRACKED_STREAMS:
        spec = TOPOLOGY.consumer(ops_tracker(stream))
        on_batch = tracker_batches(tracker, stream, batch_size, linger_s)
        consumers.append(runtime.consume(spec, on_batch, batch_size, max_wait_s))
    return consumers
