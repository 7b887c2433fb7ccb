"""The tracker's own durables, one per stream (thin: each batch goes to the tracker)."""

from __future__ import annotations

from functools import partial

from carebus_ops.handlers.track import Tracker
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.topology import OPS_TRACKED_STREAMS, TOPOLOGY, ops_tracker
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(
    runtime: ServiceRuntime, tracker: Tracker, batch_size: int, max_wait_s: float, linger_s: float
) -> list[StageConsumer]:
    """Each stream's batches to the tracker; after a short batch (the tracker is keeping up)
    its consumer lingers ``linger_s`` so that it stores fewer, fuller batches."""
    consumers = []
    for stream in OPS_TRACKED_STREAMS:
        spec = TOPOLOGY.consumer(ops_tracker(stream))
        on_batch = partial(tracker.handle, stream)
        consumers.append(runtime.consume(spec, on_batch, batch_size, max_wait_s, linger_s))
    return consumers
