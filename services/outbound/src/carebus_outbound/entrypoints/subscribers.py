"""Each feed on its own durable (thin: a batch goes to the feed, through the shared stage
loop, its ack deadline kept while a slow receiver answers)."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_outbound.handlers.deliver import Feed
from carebus_shared.jetstream.consumer import Finish
from carebus_shared.jetstream.keepalive import kept_in_progress
from carebus_shared.jetstream.stage import BatchHandler
from carebus_shared.jetstream.topology import ConsumerSpec
from carebus_shared.runtime.service import ServiceRuntime

KEEPALIVE_S = 10.0  # well inside the consumers' 30 s ack deadline
PUBLISH_ONLY_IN_FLIGHT = 2


def subscribe(
    runtime: ServiceRuntime, feed: Feed, spec: ConsumerSpec, batch_size: int, wait_s: float
) -> None:
    async def on_batch(msgs: Sequence[Msg]) -> None:
        async with kept_in_progress(msgs, KEEPALIVE_S):
            await runtime.run_stage_batch(spec.durable, msgs, feed.handle)

    runtime.consume(spec, on_batch, batch_size, wait_s)


def stage(
    runtime: ServiceRuntime,
    spec: ConsumerSpec,
    handle: BatchHandler,
    batch_size: int,
    wait_s: float,
) -> None:
    """A step that only publishes (no receiver): the shared stage loop as it is, the next
    batch handled while the last one's outputs are confirmed (docs/decisions/033)."""

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        return await runtime.prepare_stage_batch(spec.durable, msgs, handle)

    runtime.consume(spec, on_batch, batch_size, wait_s, in_flight=PUBLISH_ONLY_IN_FLIGHT)
