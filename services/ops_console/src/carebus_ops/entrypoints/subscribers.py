"""The tracker's own durables, one per stream (thin: each batch goes to the tracker)."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_ops.handlers.track import Tracker
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.topology import OPS_TRACKED_STREAMS, TOPOLOGY, ops_tracker
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(
    runtime: ServiceRuntime, tracker: Tracker, batch_size: int, max_wait_s: float
) -> list[StageConsumer]:
    consumers = []
    for stream in OPS_TRACKED_STREAMS:
        spec = TOPOLOGY.consumer(ops_tracker(stream))

        async def on_batch(msgs: Sequence[Msg], stream: str = stream) -> None:
            await tracker.handle(stream, msgs)

        consumers.append(runtime.consume(spec, on_batch, batch_size, max_wait_s))
    return consumers
