"""The stage consumer: batches of what is available, in stream order, one batch at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.provision import apply_key_value
from carebus_shared.jetstream.pull import Puller
from carebus_shared.jetstream.topology import STAGE_LEASES_BUCKET, TOPOLOGY, ConsumerSpec
from tests.support.stage_consumer import stream_with_consumer, wait_for


async def test_takes_what_is_waiting_in_order_and_one_batch_at_a_time(
    js: JetStreamContext,
) -> None:
    spec, subject = await stream_with_consumer(js)
    for n in range(120):
        await js.publish(f"{subject}.x", str(n).encode())
    batches: list[list[int]] = []
    in_flight = 0
    overlapped = False

    async def on_batch(msgs: Sequence[Msg]) -> None:
        nonlocal in_flight, overlapped
        in_flight += 1
        overlapped |= in_flight > 1
        batches.append([int(m.data) for m in msgs])
        await asyncio.sleep(0.01)
        for m in msgs:
            await m.ack()
        in_flight -= 1

    consumer = StageConsumer(spec, on_batch, batch_size=40, top_up_s=0.5, idle_wait_s=0.2)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: sum(map(len, batches)) >= 120)
    finally:
        await consumer.stop(5.0)
    assert [n for batch in batches for n in batch] == list(range(120))
    assert all(len(batch) <= 40 for batch in batches)
    assert len(batches[0]) > 1  # the waiting messages come as one batch, not one by one
    assert not overlapped


async def test_an_idle_consumer_hands_over_a_new_message_and_stops_cleanly(
    js: JetStreamContext,
) -> None:
    spec, subject = await stream_with_consumer(js)
    seen: list[bytes] = []

    async def on_batch(msgs: Sequence[Msg]) -> None:
        seen.extend(m.data for m in msgs)
        for m in msgs:
            await m.ack()

    consumer = StageConsumer(spec, on_batch, batch_size=10, top_up_s=0.005, idle_wait_s=0.3)
    consumer.start(lambda: js)
    await asyncio.sleep(0.7)  # at least one idle fetch has come back empty
    await js.publish(f"{subject}.x", b"late")
    try:
        await wait_for(lambda: seen == [b"late"])
    finally:
        assert await consumer.stop(5.0)
    info = await js.consumer_info(spec.stream, spec.durable)
    assert info.num_ack_pending == 0


async def test_a_failing_batch_does_not_stop_the_consumer(js: JetStreamContext) -> None:
    spec, subject = await stream_with_consumer(js)
    await js.publish(f"{subject}.x", b"boom")
    await js.publish(f"{subject}.x", b"fine")
    handled: list[bytes] = []

    async def on_batch(msgs: Sequence[Msg]) -> None:
        for m in msgs:
            if m.data == b"boom" and b"boom" not in handled:
                handled.append(m.data)
                raise RuntimeError("handler bug")
            handled.append(m.data)
            await m.ack()

    consumer = StageConsumer(spec, on_batch, batch_size=1, top_up_s=0.005, idle_wait_s=0.2)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: b"fine" in handled)
    finally:
        await consumer.stop(5.0)
    assert handled == [b"boom", b"fine"]


@pytest.mark.parametrize("batch_size", [1, 7])
async def test_stop_without_messages_returns_within_the_idle_wait(
    js: JetStreamContext, batch_size: int
) -> None:
    spec, _ = await stream_with_consumer(js)

    async def on_batch(msgs: Sequence[Msg]) -> None:
        raise AssertionError("no messages were published")

    consumer = StageConsumer(spec, on_batch, batch_size=batch_size, idle_wait_s=0.3)
    consumer.start(lambda: js)
    await asyncio.sleep(0.5)
    assert await consumer.stop(timeout_s=5.0)  # it ended by itself, not by the stop timeout


async def test_after_a_short_batch_it_lingers_before_fetching_again_but_not_after_a_full_one(
    js: JetStreamContext,
) -> None:
    """A consumer with ``linger_s`` that keeps up waits before its next fetch, so what
    arrives meanwhile comes in one fuller batch (the ops tracker: docs/decisions/031)."""
    spec, subject = await stream_with_consumer(js)
    for n in range(4):
        await js.publish(f"{subject}.x", str(n).encode())
    batches: list[list[int]] = []

    async def on_batch(msgs: Sequence[Msg]) -> None:
        batches.append([int(m.data) for m in msgs])
        for m in msgs:
            await m.ack()

    consumer = StageConsumer(spec, on_batch, batch_size=2, top_up_s=0.005, linger_s=0.6)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(batches) == 2)  # two full ones: no linger between them
        await js.publish(f"{subject}.x", b"4")
        await wait_for(lambda: len(batches) == 3)  # a short one: the linger starts
        for n in (5, 6):  # both while it lingers: one batch (without it, one each)
            await js.publish(f"{subject}.x", str(n).encode())
        await wait_for(lambda: sum(map(len, batches)) == 7)
    finally:
        await consumer.stop(5.0)
    assert batches == [[0, 1], [2, 3], [4], [5, 6]]


async def test_a_lingering_consumer_stops_at_once(js: JetStreamContext) -> None:
    spec, subject = await stream_with_consumer(js)
    await js.publish(f"{subject}.x", b"one")
    handled = asyncio.Event()

    async def on_batch(msgs: Sequence[Msg]) -> None:
        for m in msgs:
            await m.ack()
        handled.set()

    consumer = StageConsumer(spec, on_batch, batch_size=10, linger_s=30.0)
    consumer.start(lambda: js)
    await asyncio.wait_for(handled.wait(), 10)
    await asyncio.sleep(0.1)  # in its linger now
    started = asyncio.get_running_loop().time()
    assert await consumer.stop(timeout_s=10.0)  # ended by itself, not cancelled
    assert asyncio.get_running_loop().time() - started < 5.0


async def _ordered_stream(js: JetStreamContext, ack_wait_s: float) -> tuple[ConsumerSpec, str]:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"ORDERED_{tag}", f"ordered.{tag}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    await js.add_consumer(
        stream,
        api.ConsumerConfig(durable_name="stage", ack_wait=ack_wait_s, max_ack_pending=50),
    )
    spec = ConsumerSpec(
        stream, "stage", (f"{subject}.>",), "test", backoff_s=(ack_wait_s,), ordered=True
    )
    await apply_key_value(js, TOPOLOGY.key_value(STAGE_LEASES_BUCKET), 1)  # replicas' turns
    return spec, subject


async def _handled_by_a_successor(
    js: JetStreamContext, spec: ConsumerSpec, count: int
) -> list[int]:
    """The order a new consumer of ``spec`` handles (and acks) messages in, up to ``count``."""
    seen: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> None:
        seen.extend(int(m.data) for m in msgs)
        for m in msgs:
            await m.ack()

    consumer = StageConsumer(spec, on_batch, batch_size=20, top_up_s=0.005, idle_wait_s=0.2)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(seen) >= count)
    finally:
        await consumer.stop(5.0)
    return seen


async def test_an_ordered_stage_handles_what_a_dead_instance_held_before_anything_newer(
    js: JetStreamContext,
) -> None:
    """A stage SIGKILLed holding a batch: its successor must not take the newer messages
    first (the fault suite found the validator and mapper doing so: a booking handled after
    its check-in is stale, and its journal never posts)."""
    spec, subject = await _ordered_stream(js, ack_wait_s=2.0)
    for n in range(10):
        await js.publish(f"{subject}.x", str(n).encode())
    dead = Puller(js._nc, spec.stream, spec.durable)
    await dead.start()
    held = await dead.pull(4, None)  # fetched, never acked: the instance dies here
    await dead.stop()
    assert [int(m.data) for m in held] == [0, 1, 2, 3]
    assert await _handled_by_a_successor(js, spec, 10) == list(range(10))


async def test_a_successor_waits_for_every_batch_a_dead_instance_held(
    js: JetStreamContext,
) -> None:
    """A dead instance held two runs of messages, fetched a second apart (it acked what lay
    between): when the first run comes back, the successor must still wait for the second
    before anything newer (it looked only at the ack floor, which the first run reached)."""
    spec, subject = await _ordered_stream(js, ack_wait_s=2.0)
    for n in range(10):
        await js.publish(f"{subject}.x", str(n).encode())
    dead = Puller(js._nc, spec.stream, spec.durable)
    await dead.start()
    first_run = await dead.pull(2, None)  # 0, 1: never acked
    await asyncio.sleep(1.0)  # the second run's deadline falls a second after the first's
    between = await dead.pull(2, None)  # 2, 3: handled and acked
    for msg in between:
        await msg.ack()
    second_run = await dead.pull(2, None)  # 4, 5: never acked; the instance dies here
    await dead.stop()
    assert [int(m.data) for m in first_run + between + second_run] == [0, 1, 2, 3, 4, 5]
    assert await _handled_by_a_successor(js, spec, 8) == [0, 1, 4, 5, 6, 7, 8, 9]


async def test_an_ordered_stage_does_not_wait_for_its_own_retried_message(
    js: JetStreamContext,
) -> None:
    """A message the stage itself handed back (retry, delay) lets the newer ones go on."""
    spec, subject = await _ordered_stream(js, ack_wait_s=30.0)
    for n in range(5):
        await js.publish(f"{subject}.x", str(n).encode())
    seen: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> None:
        for m in msgs:
            seen.append(int(m.data))
            if int(m.data) == 0 and m.metadata.num_delivered == 1:
                await m.nak(delay=3.0)
            else:
                await m.ack()

    consumer = StageConsumer(spec, on_batch, batch_size=1, top_up_s=0.005, idle_wait_s=0.2)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(seen) >= 5, timeout_s=2.5)  # before the retry is due
        await wait_for(lambda: len(seen) >= 6)
    finally:
        await consumer.stop(5.0)
    assert seen == [0, 1, 2, 3, 4, 0]


async def test_replicas_of_an_ordered_stage_take_turns_and_a_stopping_one_hands_over(
    js: JetStreamContext,
) -> None:
    """Two replicas on one ordered durable: only the lease holder handles anything (never
    both at once); stopped, it releases the lease and the other goes on (docs/decisions/027)."""
    spec, subject = await _ordered_stream(js, ack_wait_s=30.0)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    busy: set[str] = set()
    overlaps = 0

    def handler(name: str) -> Callable[[Sequence[Msg]], Awaitable[None]]:
        async def on_batch(msgs: Sequence[Msg]) -> None:
            nonlocal overlaps
            overlaps += bool(busy)
            busy.add(name)
            await asyncio.sleep(0.02)  # a batch takes a while: room for the other to overlap
            seen[name].extend(int(m.data) for m in msgs)
            for m in msgs:
                await m.ack()
            busy.discard(name)

        return on_batch

    replicas = {
        name: StageConsumer(spec, handler(name), batch_size=5, idle_wait_s=0.2, lease_poll_s=0.2)
        for name in seen
    }
    for consumer in replicas.values():
        consumer.start(lambda: js)
    try:
        for n in range(30):
            await js.publish(f"{subject}.x", str(n).encode())
        await wait_for(lambda: len(seen["a"]) + len(seen["b"]) >= 30)
        active = next(name for name, consumer in replicas.items() if consumer.active)
        standby = "b" if active == "a" else "a"
        assert seen[active] == list(range(30))
        assert seen[standby] == []
        assert await replicas[active].stop(5.0)
        for n in range(30, 40):
            await js.publish(f"{subject}.x", str(n).encode())
        await wait_for(lambda: len(seen[standby]) >= 10, timeout_s=5.0)
    finally:
        for consumer in replicas.values():
            await consumer.stop(5.0)
    assert seen[standby] == list(range(30, 40))
    assert overlaps == 0
