"""Running one batch of a stage: handle, publish confirmed, then ack — per message outcome.

A stage's business handler turns each input message into an outcome:
- ``Forward(outgoing)``: publish these (possibly none) and ack the input once confirmed;
- ``Reject(...)``: the input can never succeed (bad contract, unknown reference): record it in
  the exception store under its stream sequence, then terminate it so it is not redelivered;
- ``Retry(delay_s)``: a passing problem (a database or ERP outage): nak with a delay.

An exception escaping the handler is never a drop. A dependency failure (connection lost,
timeout) pauses the stage: the batch is held (its ack deadline extended) and handled again
once the dependency answers, so an outage spends no deliveries; only a stage that is
stopping hands the batch back (nak). Any other failure is isolated: the batch is split in
halves until the failing messages stand alone, the others go on; a message that fails alone
is retried, and from its ``POISON_AFTER``-th delivery on it is kept in the exception store
with the error's type and terminated, so it cannot hold up or take good events with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing, PublishFailed, publish_confirmed, traced
from carebus_shared.replay.headers import origin_key
from carebus_shared.tracing import context as trace
from carebus_shared.tracing.stage import StageTraces

log = logging.getLogger(__name__)

# A message that fails alone on this delivery is poison: kept and terminated, not retried.
POISON_AFTER = 3
# Before that, it waits this long times its deliveries so far, then is tried again.
RETRY_ALONE_DELAY_S = 5.0
# A publish refused (a stream electing its leader) is tried again in place for this long,
# at most this far apart, before the batch is handed back.
PUBLISH_HOLD_S = 30.0
PUBLISH_RETRY_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class Forward:
    outgoing: Sequence[Outgoing] = ()


@dataclass(frozen=True, slots=True)
class Reject:
    category: str
    reason: str
    message: str
    site: str | None = None
    event_id: str | None = None
    path: str | None = None
    offending_value: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float = 5.0


Outcome = Forward | Reject | Retry
BatchHandler = Callable[[Sequence[Msg]], Awaitable[Sequence[Outcome]]]
RecordExceptions = Callable[[Sequence[ExceptionRecord]], Awaitable[None]]


@dataclass
class BatchTally:
    forwarded: int = 0
    rejected: int = 0
    retried: int = 0
    published: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Its outputs not confirmed or its state not saved: batches handled after it on its
    # unsaved state must not be acked either.
    failed: bool = False


def reject_record(stage: str, msg: Msg, outcome: Reject) -> ExceptionRecord:
    meta = msg.metadata
    return ExceptionRecord(
        # One record per stored message, whichever path (this one or the advisory) sees it
        # first; a replayed copy is the message it copies (docs/decisions/015).
        dedupe_key=origin_key(meta.stream, meta.sequence.stream, msg.headers),
        stage=stage,
        category=outcome.category,
        reason=outcome.reason,
        message=outcome.message,
        source="jetstream",
        site=outcome.site,
        event_id=outcome.event_id,
        stream=meta.stream,
        stream_seq=meta.sequence.stream,
        subject=msg.subject,
        content_type=(msg.headers or {}).get("Content-Type", "application/json"),
        raw=msg.data,
        headers=dict(msg.headers or {}),
        path=outcome.path,
        offending_value=outcome.offending_value,
    )


class BatchState(Protocol):
    """What a stage's handler changed for some messages and keeps aside until their outputs
    are confirmed (the mapper's applied versions): saved before those inputs are acked, or
    dropped when their batch, or one before it, fails (docs/decisions/033)."""

    async def save(self, msgs: Sequence[Msg]) -> None: ...

    def discard(self, msgs: Sequence[Msg]) -> None: ...


@dataclass
class PreparedBatch:
    """A batch handled, its outputs not yet sent: :meth:`finish` publishes them, waits for
    their confirmations, saves the batch's state and acks (or hands the batch back). It runs
    after every batch before this one finished, so a batch publishing again in place (a
    stream electing its leader) still lands before the next batch's outputs: per-entity
    order holds with batches in flight (docs/decisions/033)."""

    stage: str
    js: JetStreamContext
    msgs: Sequence[Msg]
    record_exceptions: RecordExceptions
    publish_timeout_s: float
    keep_waiting: Callable[[], bool]
    state: BatchState | None
    traces: StageTraces
    outcomes: list[Outcome] | None
    outgoing: list[Outgoing] = field(default_factory=list)

    async def finish(self, before_ok: bool = True) -> BatchTally:
        """``before_ok``: every batch handled before this one finished well. When one did
        not, this one was handled on its unconfirmed state: it is handed back whole."""
        msgs, outcomes = self.msgs, self.outcomes
        if outcomes is None or not before_ok:
            return await self._hand_back(RETRY_BEHIND_S if outcomes is not None else 5.0)
        tally = BatchTally()
        forwards = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Forward)]
        rejects = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Reject)]
        retries = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Retry)]
        try:
            await _publish_holding(self)
            tally.published = len(self.outgoing)
            if self.state is not None:
                await _save_holding(self, [m for m, _ in forwards])
        except PublishFailed:
            log.warning("publish not confirmed; inputs will be redelivered", exc_info=True)
            tally.failed = True
        except Exception:
            log.exception("batch not completed; inputs will be redelivered")
            tally.failed = True
        if tally.failed:
            if self.state is not None:
                self.state.discard(msgs)
            retries += [(m, Retry(2.0)) for m, _ in forwards]
            forwards = []

        if rejects:
            try:
                await self.record_exceptions([reject_record(self.stage, m, o) for m, o in rejects])
            except Exception:
                log.exception("exception store unavailable; rejected inputs will be redelivered")
                retries += [(m, Retry(5.0)) for m, _ in rejects]
                rejects = []

        for msg, _ in forwards:
            await msg.ack()
        for msg, reject in rejects:
            await msg.term()
            tally.reasons[reject.reason] = tally.reasons.get(reject.reason, 0) + 1
        for msg, retry in retries:
            await msg.nak(delay=retry.delay_s)
        tally.forwarded, tally.rejected = len(forwards), len(rejects)
        tally.retried = len(retries)
        self.traces.end(outcomes)
        return tally

    async def _hand_back(self, delay_s: float) -> BatchTally:
        if self.state is not None:
            self.state.discard(self.msgs)
        for msg in self.msgs:
            await msg.nak(delay=delay_s)
        self.traces.end(None)
        return BatchTally(retried=len(self.msgs), failed=True)


# A batch handled behind one that failed comes back this much later (with the failed one,
# which comes back after its own delay, 2 s for an unconfirmed publish).
RETRY_BEHIND_S = 2.0


async def prepare_batch(
    stage: str,
    js: JetStreamContext,
    msgs: Sequence[Msg],
    handle: BatchHandler,
    record_exceptions: RecordExceptions,
    publish_timeout_s: float = 10.0,
    keep_waiting: Callable[[], bool] = lambda: False,
    state: BatchState | None = None,
) -> PreparedBatch:
    """Handle ``msgs`` and build their outputs; ``keep_waiting``: whether to hold the batch
    through a dependency outage (True while the stage runs) rather than hand it back.
    ``state``: what the handler keeps aside for these messages (see :class:`BatchState`)."""
    traces = StageTraces(stage, msgs)
    prepared = PreparedBatch(
        stage, js, msgs, record_exceptions, publish_timeout_s, keep_waiting, state, traces, None
    )
    try:
        with trace.activate_batch(traces.by_event_id):
            prepared.outcomes = await _outcomes_through_outages(stage, msgs, handle, keep_waiting)
        if prepared.outcomes is not None:
            # Each output carries its own input's context, whoever built it.
            pairs = zip(msgs, prepared.outcomes, strict=True)
            prepared.outgoing = [
                traced(out, traces.context_of(m))
                for m, o in pairs
                if isinstance(o, Forward)
                for out in o.outgoing
            ]
    except BaseException:
        if state is not None:
            state.discard(msgs)  # nothing of it is saved: the batch comes back whole
        raise
    return prepared


async def run_batch(
    stage: str,
    js: JetStreamContext,
    msgs: Sequence[Msg],
    handle: BatchHandler,
    record_exceptions: RecordExceptions,
    publish_timeout_s: float = 10.0,
    keep_waiting: Callable[[], bool] = lambda: False,
    state: BatchState | None = None,
) -> BatchTally:
    """Handle, publish confirmed, save the state, ack: one batch start to end."""
    prepared = await prepare_batch(
        stage, js, msgs, handle, record_exceptions, publish_timeout_s, keep_waiting, state
    )
    return await prepared.finish()


# Between tries while a dependency is away: half the pause so far, at least the first and
# at most the last, so that the stage goes on within half the outage's length after the
# dependency is back (doubling from the first left it idle up to the outage's length again).
PAUSE_S = (0.25, 10.0)


async def _publish_holding(batch: PreparedBatch) -> None:
    """Publish the batch's outputs and wait for their confirmations; when not confirmed,
    publish again in place (the batch held) while the stage runs, for up to
    ``PUBLISH_HOLD_S``: a stream electing a new leader answers 503 or nothing for a few
    seconds, and handing the batch back would let an ordered stage go on with newer events
    first (docs/decisions/027). Outputs carry their ``Nats-Msg-Id``: a second publish of one
    already stored is a duplicate, not a second event."""
    deadline = time.monotonic() + PUBLISH_HOLD_S
    delay = PAUSE_S[0]
    while True:  # bounded by the deadline and keep_waiting()
        try:
            await publish_confirmed(batch.js, batch.outgoing, batch.publish_timeout_s)
            return
        except PublishFailed:
            if not batch.keep_waiting() or time.monotonic() + delay > deadline:
                raise
            log.warning("publish not confirmed; batch held, publishing again", exc_info=True)
        await asyncio.sleep(delay)
        delay = min(2 * delay, PUBLISH_RETRY_MAX_S)
        await _keep_in_progress(batch.msgs)


async def _save_holding(batch: PreparedBatch, msgs: Sequence[Msg]) -> None:
    """Save the state the handler kept aside for ``msgs``, tried again while a dependency is
    away and the stage runs (the outputs are confirmed: the batch is held, not handed back)."""
    assert batch.state is not None
    paused_since = 0.0
    while True:  # bounded by keep_waiting(): false once the stage stops
        try:
            await batch.state.save(msgs)
            return
        except DEPENDENCY_ERRORS as exc:
            if not batch.keep_waiting():
                raise
            if paused_since == 0.0:
                paused_since = time.monotonic()
                log.warning(
                    "a dependency is unavailable (%s); batch held before saving its state",
                    type(exc).__name__,
                    extra={"stage": batch.stage},
                )
        await _pause_after(paused_since)
        await _keep_in_progress(batch.msgs)


async def _pause_after(paused_since: float) -> None:
    """Wait before the next try while a dependency is away (see ``PAUSE_S``)."""
    paused_for = time.monotonic() - paused_since
    await asyncio.sleep(min(max(paused_for / 2, PAUSE_S[0]), PAUSE_S[1]))


async def _keep_in_progress(msgs: Sequence[Msg]) -> None:
    """Restart the batch's ack deadline; NATS away: the batch comes back by itself."""
    with contextlib.suppress(Exception):
        await asyncio.gather(*(msg.in_progress() for msg in msgs))


async def _outcomes_through_outages(
    stage: str, msgs: Sequence[Msg], handle: BatchHandler, keep_waiting: Callable[[], bool]
) -> list[Outcome] | None:
    """The batch's outcomes, tried again while a dependency is away and the stage runs; None
    when the stage stops first (the batch is handed back)."""
    paused_since = 0.0
    while True:  # bounded by keep_waiting(): false once the stage stops
        try:
            outcomes = await _isolated_outcomes(stage, msgs, handle)
            if paused_since:
                paused = time.monotonic() - paused_since
                log.warning("stage resumed after %.0f s", paused, extra={"stage": stage})
            return outcomes
        except DEPENDENCY_ERRORS as exc:
            if not keep_waiting():
                log.warning("handler failed (%s); batch handed back", type(exc).__name__)
                return None
            if paused_since == 0.0:
                paused_since = time.monotonic()
                log.warning(
                    "a dependency is unavailable (%s); stage paused, batch held",
                    type(exc).__name__,
                    extra={"stage": stage},
                )
        await _pause_after(paused_since)
        # The deadline restarts: the batch stays ours without a redelivery. When NATS is
        # away too this raises, and the batch comes back after its deadline instead.
        await asyncio.gather(*(msg.in_progress() for msg in msgs))


async def _outcomes(stage: str, msgs: Sequence[Msg], handle: BatchHandler) -> list[Outcome]:
    outcomes = await handle(msgs)
    if len(outcomes) != len(msgs):
        raise RuntimeError(f"{stage}: {len(outcomes)} outcomes for {len(msgs)} messages")
    return list(outcomes)


async def _isolated_outcomes(
    stage: str, msgs: Sequence[Msg], handle: BatchHandler
) -> list[Outcome]:
    """The handler's outcomes; when it fails on the messages themselves, the outcomes of
    each half, down to the failing messages alone (dependency errors propagate)."""
    try:
        return await _outcomes(stage, msgs, handle)
    except DEPENDENCY_ERRORS:
        raise
    except Exception as exc:
        if len(msgs) == 1:
            return [_failed_alone(stage, msgs[0], exc)]
        log.warning(
            "handler failed (%s) on a batch of %d; isolating the failing messages",
            type(exc).__name__,
            len(msgs),
            extra={"stage": stage},
        )
    half = len(msgs) // 2
    return [
        *await _isolated_outcomes(stage, msgs[:half], handle),
        *await _isolated_outcomes(stage, msgs[half:], handle),
    ]


def _failed_alone(stage: str, msg: Msg, exc: Exception) -> Outcome:
    meta = msg.metadata
    where = {"stage": stage, "stream": meta.stream, "stream_seq": meta.sequence.stream}
    ctx = trace.for_event((msg.headers or {}).get("Nats-Msg-Id"))
    if ctx is not None:
        where |= {"trace_id": ctx.trace_id, "span_id": ctx.span_id}
    log.error("handler failed on one message", exc_info=exc, extra=where)
    if meta.num_delivered < POISON_AFTER:
        return Retry(delay_s=RETRY_ALONE_DELAY_S * meta.num_delivered)
    return Reject(
        category="transport",
        reason="handler_failed",
        message=f"{stage} failed on this message {meta.num_delivered} times "
        f"({type(exc).__name__}); kept for a person to fix and re-drive",
    )
