"""A stream and a durable pull consumer of its own for stage-consumer tests, and a bounded
wait on a condition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from nats.js import JetStreamContext, api

from carebus_shared.jetstream.topology import ConsumerSpec


async def stream_with_consumer(
    js: JetStreamContext, ack_wait_s: float = 30
) -> tuple[ConsumerSpec, str]:
    """A new stream with a durable ``stage`` on it, and the subject prefix it takes."""
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"CONSUMER_{tag}", f"consumer.{tag}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    await js.add_consumer(
        stream, api.ConsumerConfig(durable_name="stage", ack_wait=ack_wait_s, max_ack_pending=50)
    )
    return ConsumerSpec(stream, "stage", (f"{subject}.>",), "test"), subject


async def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def ack_floor_after(
    js: JetStreamContext, spec: ConsumerSpec, seq: int, timeout_s: float = 10.0
) -> int:
    """The consumer's ack floor once it reached ``seq``, or where it stood after
    ``timeout_s``."""
    floor = 0
    for _ in range(int(timeout_s / 0.02)):  # bounded by timeout_s
        info = await js.consumer_info(spec.stream, spec.durable)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if floor >= seq:
            break
        await asyncio.sleep(0.02)
    return floor
