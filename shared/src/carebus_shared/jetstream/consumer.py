"""Drive a stage from its provisioned durable pull consumer: fetch a batch, run it, repeat.

Why not FastStream's batch subscriber: its pull loop keeps fetching until the batch is full
or its timeout has passed, so below a few thousand messages/s every hop holds each batch for
the whole timeout before handling it (docs/decisions/004). Here a batch is whatever is
available now, handled at once:

- busy: a "no wait" pull returns the waiting messages straight away; only when none are
  waiting does a second pull linger, for ``top_up_s``;
- idle (the last pull came back empty): a pull of one parks on the server for
  ``idle_wait_s``, answered the moment a message arrives, and that message is handled at
  once (what arrives meanwhile makes the next, busy, batch).

Pulls go through ``pull.Puller`` rather than nats-py's ``fetch`` (a task per message).

One batch is handled at a time per consumer: stages whose order matters rely on it (see
topology). With ``in_flight`` 2 a batch's outputs are published and confirmed while the next
batch is handled: ``on_batch`` handles, and returns a ``Finish`` that publishes, waits, saves
and acks; finishes run one after another in the order the batches were handled (so outputs
reach the stream in that order), each told whether all before it went well (one that did not
hands back every batch behind it: docs/decisions/033). The
loop also skips FastStream's per-call middleware, argument resolution and logging context.

An *ordered* stage (``ConsumerSpec.ordered``) also never handles a message while an older one
is still out with another delivery: when an instance dies holding a batch, JetStream hands
its successor newer messages (up to the consumer's allowance) long before the dead one's
ack deadline brings that batch back. The successor holds what it fetched (in-progress acks)
until every message out elsewhere is redelivered to it (it counts them: an instance may
have held several runs, which come back a deadline apart), then handles them all in stream
order. A message this consumer itself handed back (a retry) does not hold the others up.

Replicas of an ordered stage take turns on each of its durables (one per subject partition):
only the one holding the durable's lease fetches (``lease.Lease``; docs/decisions/027); the
others try for it every ``lease_poll_s``. With a ``balancer`` (``balancer.Balancer``;
docs/decisions/030) a replica takes a free lease only within its fair share of the stage's
partitions, and hands one back (between batches) when it holds more. A stopping consumer
finishes (or hands back) what it holds, then releases the lease.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.jetstream.balancer import Balancer
from carebus_shared.jetstream.keepalive import kept_in_progress
from carebus_shared.jetstream.lease import Lease
from carebus_shared.jetstream.pull import Puller
from carebus_shared.jetstream.topology import ConsumerSpec
from carebus_shared.tasks import cancel_and_wait

log = logging.getLogger("carebus.consumer")

# Given whether every batch handled before it finished well: finish (confirm, save, ack) or
# hand the batch back; whether it finished well.
Finish = Callable[[bool], Awaitable[bool]]
# Handle a batch: done (None), or a Finish to run after the batches before it finished.
OnBatch = Callable[[Sequence[Msg]], Awaitable[Finish | None]]


@dataclass
class StageConsumer:
    spec: ConsumerSpec
    on_batch: OnBatch
    batch_size: int = 100
    top_up_s: float = 0.005
    idle_wait_s: float = 1.0
    retry_s: float = 1.0
    hold_poll_s: float = 0.5
    lease_poll_s: float = 1.0
    balancer: Balancer | None = None
    # After a batch short of ``batch_size`` (keeping up), wait this long before the next
    # fetch, so what arrives meanwhile comes in one fuller batch (docs/decisions/031).
    linger_s: float = 0.0
    # Batches handled and not yet finished at most (1: one batch start to end at a time).
    in_flight: int = 1
    # A batch waiting for the one before it to finish (which may hold its outputs through a
    # stream's leader election) restarts its messages' ack deadlines this often.
    keep_behind_s: float = 10.0
    _finishing: collections.deque[asyncio.Task[bool]] = field(
        default_factory=collections.deque, init=False
    )
    _a_finish_failed: bool = field(default=False, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    # Ordered stages: stream sequences fetched in this life (pruned below the ack floor),
    # and the last one handled.
    _fetched: set[int] = field(default_factory=set, init=False)
    _last_seq: int = field(default=0, init=False)
    _lease: Lease | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise ValueError("in_flight: at least one batch")
        if self.spec.ordered:
            self._lease = Lease(self.spec.stream, self.spec.durable)
            if self.balancer is not None:
                self._lease.holder = self.balancer.member  # one name per replica
                self.balancer.register(self.spec.partition or 0, self._lease)

    @property
    def active(self) -> bool:
        """Whether this replica fetches (an ordered stage's standby does not)."""
        return self._lease is None or self._lease.held

    def start(self, js: Callable[[], JetStreamContext]) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(js), name=f"consume-{self.spec.durable}")

    async def stop(self, timeout_s: float) -> bool:
        """Finish the batch in hand (an idle fetch ends within ``idle_wait_s``), then stop.
        False when it had to be cancelled after ``timeout_s``."""
        self._stopping.set()
        if self._task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            return True
        except TimeoutError:
            log.warning("consumer did not stop in time", extra={"durable": self.spec.durable})
            await cancel_and_wait(self._task)
            return False

    async def _run(self, js: Callable[[], JetStreamContext]) -> None:
        try:
            await self._consume(js)
        except asyncio.CancelledError:
            for task in self._finishing:  # each waits on the one before: cancel them all
                task.cancel()
            raise

    async def _consume(self, js: Callable[[], JetStreamContext]) -> None:
        puller: Puller | None = None
        busy = True
        while not self._stopping.is_set():  # bounded by stop()
            if not await self._take_turn(js):
                await _stop(puller)  # what came for no pull yet goes back at once
                puller = None
                busy = False
                with contextlib.suppress(TimeoutError):  # a standby: try again, or stop
                    await asyncio.wait_for(self._stopping.wait(), self.lease_poll_s)
                continue
            try:
                if puller is None:
                    # nats-py keeps the connection on the context; the inbox rides on it.
                    puller = Puller(js()._nc, self.spec.stream, self.spec.durable)
                    await puller.start()
                msgs = await self._next_batch(puller, busy)
            except Exception:  # a reconnecting link or a consumer being re-provisioned
                log.warning("fetch failed", exc_info=True, extra={"durable": self.spec.durable})
                await _stop(puller)
                puller = None
                await asyncio.sleep(self.retry_s)
                continue
            busy = bool(msgs)
            if not msgs and puller.refusal:
                log.info("pull refused: %s", puller.refusal, extra={"durable": self.spec.durable})
                await asyncio.sleep(self.retry_s)  # e.g. another replica holds the batch
            if msgs and self.spec.ordered:
                try:
                    msgs = await self._in_order(js(), puller, msgs)
                except Exception:  # the link went: the held messages come back by themselves
                    log.warning(
                        "holding failed", exc_info=True, extra={"durable": self.spec.durable}
                    )
                    continue
            if msgs:
                if self._a_finish_failed:
                    # Handled on top of what is being handed back, it would go back too, and
                    # the next on top of it, for as long as batches keep coming.
                    await self._finished(down_to=0)
                    self._a_finish_failed = False
                before = self._unfinished()  # what this batch is handled on top of
                # The stage runner acks, terminates or naks each message itself; anything
                # escaping it leaves the batch unacked, to be redelivered after the deadline.
                try:
                    finish = await self.on_batch(msgs)
                except Exception:
                    log.exception("batch failed", extra={"durable": self.spec.durable})
                    finish = None
                if finish is not None:
                    self._after(before, finish, msgs)
                await self._finished(down_to=self.in_flight - 1)
                if self.linger_s and len(msgs) < self.batch_size:
                    with contextlib.suppress(TimeoutError):  # ends early on stop()
                        await asyncio.wait_for(self._stopping.wait(), self.linger_s)
        await self._finished(down_to=0)
        await _stop(puller)
        if self._lease is not None:
            with contextlib.suppress(Exception):  # the link may be down; then it expires
                await self._lease.release(js())

    def _unfinished(self) -> asyncio.Task[bool] | None:
        """The last batch's finish while it runs (the next batch depends on how it ends); a
        batch handled after it ended does not, however it ended (it was handed back whole)."""
        last = self._finishing[-1] if self._finishing else None
        return last if last is not None and not last.done() else None

    def _after(
        self, before: asyncio.Task[bool] | None, finish: Finish, msgs: Sequence[Msg]
    ) -> None:
        """Run ``finish`` of ``msgs`` once ``before`` (and so every batch before it) has
        finished."""

        async def in_turn() -> bool:
            before_ok = True
            if before is not None:
                async with kept_in_progress(msgs, self.keep_behind_s):  # not handed out again
                    before_ok = await before
            try:
                ok = await finish(before_ok)
            except Exception:  # left unacked: redelivered after its deadline
                log.exception("batch failed", extra={"durable": self.spec.durable})
                ok = False
            self._a_finish_failed |= not ok
            return ok

        self._finishing.append(asyncio.create_task(in_turn(), name=f"finish-{self.spec.durable}"))

    async def _finished(self, down_to: int) -> None:
        """Wait until at most ``down_to`` batches are still finishing."""
        while len(self._finishing) > down_to:  # bounded: each wait removes one
            await self._finishing[0]
            self._finishing.popleft()

    async def _take_turn(self, js: Callable[[], JetStreamContext]) -> bool:
        """Whether this replica may fetch now: always, unless the stage is ordered and another
        replica holds the durable's lease, or the balancer keeps this one from taking it or
        asks for it back."""
        lease, balancer = self._lease, self.balancer
        if lease is None:
            return True
        shedding = lease.held and balancer is not None and balancer.should_shed()
        if lease.held and not shedding:
            return True
        await self._finished(down_to=0)  # what this replica handled is acked before it lets go
        if shedding:
            assert balancer is not None
            log.info("partition handed back", extra={"durable": self.spec.durable})
            try:
                with contextlib.suppress(Exception):  # the link may be down; then it expires
                    await lease.release(js())
            finally:
                balancer.shed()
            self._forget()
            return False
        self._forget()  # released, lost or never held: what it knew of the stream is stale
        try:
            if balancer is None:
                return await lease.acquire(js())
            async with balancer.taking:
                return balancer.may_take() and await lease.acquire(js())
        except Exception:  # NATS away: nobody can take it; try again
            log.warning("lease not taken", exc_info=True, extra={"durable": self.spec.durable})
            return False

    def _forget(self) -> None:
        """Another replica may have handled this durable's messages since: nothing fetched
        before counts as ours any more."""
        self._fetched.clear()
        self._last_seq = 0

    async def _in_order(self, js: JetStreamContext, puller: Puller, msgs: list[Msg]) -> list[Msg]:
        """``msgs`` in stream order, after whatever message was still out with another
        delivery (held until it comes back, at most the longest redelivery step); nothing
        when the stage stops meanwhile (what it held is handed back)."""
        held = sorted(msgs, key=_seq)
        deadline = time.monotonic() + max(self.spec.backoff_s) + 5.0
        waiting_for: int | None = None
        while True:  # bounded by the deadline and by stop()
            self._fetched.update(_seq(m) for m in held)
            out = await self._out_elsewhere(js, held)
            if out is not None and self._stopping.is_set():
                for msg in held:  # back to JetStream; whoever takes over holds them in turn
                    await msg.nak()
                return []
            if out is None or time.monotonic() > deadline:
                if out is not None:
                    log.warning(
                        "%d messages still out elsewhere; going on without them", out,
                        extra={"durable": self.spec.durable},
                    )  # fmt: skip
                self._last_seq = _seq(held[-1])
                return held
            if out != waiting_for:
                waiting_for = out
                log.warning(
                    "holding %d messages until %d out elsewhere come back (an instance died "
                    "holding them?)", len(held), out, extra={"durable": self.spec.durable},
                )  # fmt: skip
            await asyncio.gather(*(m.in_progress() for m in held))
            more = await puller.pull(self.batch_size, self.hold_poll_s)
            if puller.refusal:  # e.g. the allowance is used up: nothing comes sooner
                await asyncio.sleep(self.hold_poll_s)
            known = {_seq(m) for m in held}
            held = sorted(held + [m for m in more if _seq(m) not in known], key=_seq)

    async def _out_elsewhere(self, js: JetStreamContext, held: list[Msg]) -> int | None:
        """How many unacknowledged messages this consumer never fetched are out with another
        delivery (a dead instance's, to come back at their deadline), or None."""
        first = _seq(held[0])
        if self._last_seq and first == self._last_seq + 1:
            return None  # straight after what we handled: nothing older can be out
        info = await js.consumer_info(self.spec.stream, self.spec.durable)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        self._fetched = {s for s in self._fetched if s > floor}
        # Ours, fetched but not held now (a retry waiting on its delay, an ack in flight).
        ours = len(self._fetched - {_seq(m) for m in held})
        # Not just the oldest: an instance that died holding two runs of messages sends them
        # back one deadline apart, and the ack floor only says where the first began.
        elsewhere = (info.num_ack_pending or 0) - len(held) - ours
        return elsewhere if elsewhere > 0 else None

    async def _next_batch(self, puller: Puller, busy: bool) -> list[Msg]:
        if not busy:
            return await puller.pull(1, self.idle_wait_s)
        waiting = await puller.pull(self.batch_size, None)
        return waiting or await puller.pull(self.batch_size, self.top_up_s)


def _seq(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


async def _stop(puller: Puller | None) -> None:
    if puller is not None:
        with contextlib.suppress(Exception):  # the link may be down; the server forgets it
            await puller.stop()
