"""Batches in flight (docs/decisions/033): the next batch is handled while the last one's
confirmations come back; finishes run in the order the batches were handled, and a batch
handled while the one before it was still finishing is handed back when that one fails."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.consumer import Finish, StageConsumer
from carebus_shared.jetstream.publish import Outgoing
from carebus_shared.jetstream.stage import Forward, Outcome, prepare_batch
from tests.support.stage_consumer import ack_floor_after, stream_with_consumer, wait_for

MESSAGES = 12
BATCH = 3
KEEP_BEHIND_S = 0.3  # well inside the tests' 1 s ack deadline


async def _publish(js: JetStreamContext, subject: str, count: int) -> None:
    for n in range(count):
        await js.publish(f"{subject}.x", str(n).encode())


async def test_the_next_batch_is_handled_while_the_last_one_finishes(js: JetStreamContext) -> None:
    spec, subject = await stream_with_consumer(js)
    await _publish(js, subject, MESSAGES)
    events: list[str] = []
    handled: list[asyncio.Event] = [asyncio.Event() for _ in range(MESSAGES // BATCH + 1)]
    acked: list[int] = []

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        k = sum(e.is_set() for e in handled)
        events.append(f"handle {k}")
        handled[k].set()

        async def finish(before_ok: bool) -> bool:
            if k + 1 < MESSAGES // BATCH:  # the last batch has nothing behind it
                # Serially this would wait for ever: the next batch comes after this finish.
                await asyncio.wait_for(handled[k + 1].wait(), 5)
            events.append(f"finish {k}")
            for m in msgs:
                await m.ack()
                acked.append(int(m.data))
            return True

        return finish

    consumer = StageConsumer(
        spec, on_batch, batch_size=BATCH, top_up_s=0.2, idle_wait_s=0.2, in_flight=2
    )
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(acked) == MESSAGES)
    finally:
        assert await consumer.stop(5.0)
    assert acked == list(range(MESSAGES))
    assert events == [
        "handle 0", "handle 1", "finish 0", "handle 2", "finish 1", "handle 3", "finish 2",
        "finish 3",
    ]  # fmt: skip
    info = await js.consumer_info(spec.stream, spec.durable)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_with_one_in_flight_each_batch_finishes_before_the_next_is_handled(
    js: JetStreamContext,
) -> None:
    spec, subject = await stream_with_consumer(js)
    await _publish(js, subject, MESSAGES)
    events: list[str] = []

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        events.append("handle")

        async def finish(before_ok: bool) -> bool:
            await asyncio.sleep(0.02)  # a confirmation wait the next batch must not overlap
            events.append("finish")
            for m in msgs:
                await m.ack()
            return True

        return finish

    consumer = StageConsumer(spec, on_batch, batch_size=BATCH, top_up_s=0.2, idle_wait_s=0.2)
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: events.count("finish") == MESSAGES // BATCH)
    finally:
        assert await consumer.stop(5.0)
    assert events == ["handle", "finish"] * (MESSAGES // BATCH)


async def test_a_batch_published_again_in_place_lands_before_the_next_batchs_outputs(
    js: JetStreamContext,
) -> None:
    """A stream electing its leader refuses the first batch's publishes; that batch publishes
    again in place while the next one is handled on top of it. The next one's outputs must
    not reach the stream first: per-entity order (the scale-out run that killed a stream
    leader's node saw input 63 come out after input 64)."""
    spec, subject = await stream_with_consumer(js)
    await _publish(js, subject, 2 * BATCH)
    tag = uuid.uuid4().hex[:8]
    out_stream, out_subject = f"OUT_{tag}", f"out.{tag}"
    handled: list[list[int]] = []

    async def handle(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        handled.append([int(m.data) for m in msgs])
        if len(handled) == 2:  # the stream is back (before the first batch tries again)
            await js.add_stream(name=out_stream, subjects=[f"{out_subject}.>"])
        return [
            Forward((Outgoing(f"{out_subject}.x", m.data, f"{tag}-{int(m.data)}"),)) for m in msgs
        ]

    async def no_rejects(records: Sequence[ExceptionRecord]) -> None:
        raise AssertionError("nothing here is rejected")

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        prepared = await prepare_batch(
            "test", js, msgs, handle, no_rejects, publish_timeout_s=2.0, keep_waiting=lambda: True
        )

        async def finish(before_ok: bool) -> bool:
            return not (await prepared.finish(before_ok)).failed

        return finish

    consumer = StageConsumer(
        spec, on_batch, batch_size=BATCH, top_up_s=0.2, idle_wait_s=0.2, in_flight=2
    )
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(handled) >= 2)
        acked = await ack_floor_after(js, spec, 2 * BATCH)
    finally:
        assert await consumer.stop(5.0)
    assert handled == [[0, 1, 2], [3, 4, 5]]  # each batch handled once: none handed back
    assert acked == 2 * BATCH
    stored = [int((await js.get_msg(out_stream, seq)).data) for seq in range(1, 2 * BATCH + 1)]
    assert stored == list(range(2 * BATCH))


async def test_a_batch_waiting_behind_a_long_finish_keeps_its_messages(
    js: JetStreamContext,
) -> None:
    """The batch before it holds its outputs (a leader election) past the ack deadline: the
    batch handled on top keeps its messages in progress meanwhile, or JetStream would hand
    them out again while they are still to be published and acked."""
    spec, subject = await stream_with_consumer(js, ack_wait_s=1.0)
    await _publish(js, subject, 2 * BATCH)
    deliveries: list[list[int]] = []

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        k = len(deliveries)
        deliveries.append([m.metadata.num_delivered for m in msgs])

        async def finish(before_ok: bool) -> bool:
            if k == 0:
                for _ in range(6):  # 3 s, holding its own messages as a publish hold does
                    await asyncio.sleep(0.5)
                    await asyncio.gather(*(m.in_progress() for m in msgs))
            for m in msgs:
                await m.ack()
            return True

        return finish

    consumer = StageConsumer(
        spec, on_batch, batch_size=BATCH, top_up_s=0.2, idle_wait_s=0.2, in_flight=2,
        keep_behind_s=KEEP_BEHIND_S,
    )  # fmt: skip
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(deliveries) >= 2)
        acked = await ack_floor_after(js, spec, 2 * BATCH, timeout_s=5.0)
        await asyncio.sleep(1.2)  # past another deadline: nothing comes back
    finally:
        assert await consumer.stop(5.0)
    assert acked == 2 * BATCH
    assert deliveries == [[1] * BATCH, [1] * BATCH]
    assert (await js.consumer_info(spec.stream, spec.durable)).num_redelivered == 0


@dataclass
class _Batch:
    msgs: list[int]
    on_top_of_unfinished: bool  # the batch before it was still finishing when this one began
    before_ok: bool | None = None
    ok: bool | None = None
    finished: bool = False


@dataclass
class _Script:
    """Which batches fail (by the order they are handled; later ones succeed) and how long
    each takes to finish."""

    fails: list[bool]
    delays_s: list[float]
    batches: list[_Batch] = field(default_factory=list)
    finish_order: list[int] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def on_batch(self, msgs: Sequence[Msg]) -> Finish:
        k = len(self.batches)
        last = self.batches[-1] if self.batches else None
        batch = _Batch([int(m.data) for m in msgs], last is not None and not last.finished)
        self.batches.append(batch)

        async def finish(before_ok: bool) -> bool:
            await asyncio.sleep(self.delays_s[k % len(self.delays_s)])
            batch.before_ok = before_ok
            batch.ok = before_ok and not (k < len(self.fails) and self.fails[k])
            for m in msgs:
                if batch.ok:
                    await m.ack()
                    self.acked.append(int(m.data))
                else:
                    await m.nak(delay=0.05)
            self.finish_order.append(k)
            batch.finished = True
            return batch.ok

        return finish


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    fails=st.lists(st.booleans(), min_size=1, max_size=8),
    delays_s=st.lists(st.sampled_from([0.0, 0.005, 0.03]), min_size=1, max_size=4),
)
async def test_a_failed_batch_hands_back_what_was_handled_on_top_of_it_and_nothing_else(
    js: JetStreamContext, fails: list[bool], delays_s: list[float]
) -> None:
    spec, subject = await stream_with_consumer(js)
    await _publish(js, subject, MESSAGES)
    script = _Script(fails, delays_s)

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        return script.on_batch(msgs)

    consumer = StageConsumer(
        spec, on_batch, batch_size=BATCH, top_up_s=0.01, idle_wait_s=0.05, in_flight=2
    )
    consumer.start(lambda: js)
    try:
        await wait_for(lambda: len(script.acked) == MESSAGES)
    finally:
        assert await consumer.stop(5.0)
    finished = [b for b in script.batches if b.finished]
    assert script.finish_order == list(range(len(finished)))  # in the order handled
    for previous, batch in itertools.pairwise(finished):
        # Handed back exactly when handled on top of a batch that then failed: a failure
        # reaches what was in flight behind it, not every batch after it.
        assert batch.before_ok == (previous.ok if batch.on_top_of_unfinished else True)
    assert finished[0].before_ok is True
    # After a failure the next batch waits for what is in flight: one handed back at most.
    failed_alone = sum(1 for b in finished if b.before_ok and not b.ok)
    assert sum(1 for b in finished if not b.before_ok) <= failed_alone
    assert sorted(script.acked) == list(range(MESSAGES))  # each acked once, none lost
