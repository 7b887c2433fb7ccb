"""Regression tests for the FastStream/nats-py pull-fetch timeout defect.

Without the guard, a plain asyncio.TimeoutError out of fetch() kills FastStream's batch
consume task; the batch it had fetched is acked only after ack_wait, 30-60 s late.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import nats.errors
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.js import JetStreamContext, api

from carebus_shared.jetstream.fetch_guard import install_fetch_timeout_guard


async def test_tiny_and_expired_deadlines_surface_as_nats_timeouts(js: JetStreamContext) -> None:
    install_fetch_timeout_guard()
    name = f"G{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    sub = await js.pull_subscribe(f"{name}.>", durable="g", stream=name)
    kinds = set()
    for timeout in (0.0, 0.0005, 0.001, 0.002, 0.01):
        for batch in (1, 10):
            try:
                await sub.fetch(batch, timeout=timeout)
            except Exception as exc:
                kinds.add(type(exc))
    assert kinds == {nats.errors.TimeoutError}


async def test_batch_subscriber_delivers_every_message_once_at_rate(
    nats_url: str, js: JetStreamContext
) -> None:
    name = f"R{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    # A long ack deadline: a message stranded by a dead consume task would come back only
    # after 60 s, well past this test's bound, and its delivery count would read 2.
    await js.add_consumer(
        name, api.ConsumerConfig(durable_name="r", ack_wait=60, max_ack_pending=10_000)
    )
    deliveries: list[int] = []
    total = 1500
    all_delivered = asyncio.Event()
    broker = NatsBroker(nats_url)

    @broker.subscriber(  # type: ignore[untyped-decorator]
        f"{name}.>",
        stream=JStream(name, declare=False),
        durable="r",
        # A very short batch wait puts fetch deadlines right at the edge, where it broke.
        pull_sub=PullSub(batch_size=50, timeout=0.003, batch=True),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_batch(_: Any, message: Annotated[NatsBatchMessage, Context("message")]) -> None:
        for msg in message.raw_message:
            deliveries.append(msg.metadata.num_delivered)
            await msg.ack()
        if len(deliveries) >= total:
            all_delivered.set()

    install_fetch_timeout_guard()
    await broker.start()
    try:
        for i in range(total):  # ~500/s offered, in small bursts
            await js.publish(f"{name}.x", b"x")
            if i % 10 == 9:
                await asyncio.sleep(0.02)
        async with asyncio.timeout(30):
            await all_delivered.wait()
    finally:
        await broker.stop()
    assert len(deliveries) == total
    assert set(deliveries) == {1}, "some messages were redelivered"
