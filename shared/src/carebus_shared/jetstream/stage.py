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


async def run_batch(
    stage: str,
    js: JetStreamContext,
    msgs: Sequence[Msg],
    handle: BatchHandler,
    record_exceptions: RecordExceptions,
    publish_timeout_s: float = 10.0,
    keep_waiting: Callable[[], bool] = lambda: False,
) -> BatchTally:
    """``keep_waiting``: whether to hold the batch through a dependency outage (True while
    the stage runs) rather than hand it back."""
    tally = BatchTally()
    traced_batch = StageTraces(stage, msgs)
    with trace.activate_batch(traced_batch.by_event_id):
        outcomes = await _outcomes_through_outages(stage, msgs, handle, keep_waiting)
    if outcomes is None:
        for msg in msgs:
            await msg.nak(delay=5.0)
        tally.retried = len(msgs)
        traced_batch.end(None)
        return tally

    forwards = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Forward)]
    rejects = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Reject)]
    retries = [(m, o) for m, o in zip(msgs, outcomes, strict=True) if isinstance(o, Retry)]

    # Each output carries its own input's context, whoever built it.
    context_of = traced_batch.context_of
    outgoing = [traced(out, context_of(m)) for m, o in forwards for out in o.outgoing]
    try:
        await _publish_holding(js, outgoing, msgs, publish_timeout_s, keep_waiting)
        tally.published = len(outgoing)
    except PublishFailed:
        log.warning("publish not confirmed; inputs will be redelivered", exc_info=True)
        retries += [(m, Retry(2.0)) for m, _ in forwards]
        forwards = []

    if rejects:
        try:
            await record_exceptions([reject_record(stage, m, o) for m, o in rejects])
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
    tally.forwarded, tally.rejected, tally.retried = len(forwards), len(rejects), len(retries)
    traced_batch.end(outcomes)
    return tally


# Between tries while a dependency is away: half the pause so far, at least the first and
# at most the last, so that the stage goes on within half the outage's length after the
# dependency is back (doubling from the first left it idle up to the outage's length again).
PAUSE_S = (0.25, 10.0)


async def _publish_holding(
    js: JetStreamContext,
    outgoing: Sequence[Outgoing],
    msgs: Sequence[Msg],
    timeout_s: float,
    keep_waiting: Callable[[], bool],
) -> None:
    """Publish confirmed, tried again in place (the batch held) while the stage runs, for up
    to ``PUBLISH_HOLD_S``: a stream electing a new leader answers 503 or nothing for a few
    seconds, and handing the batch back would let an ordered stage go on with newer events
    first (docs/decisions/027). Outputs carry their ``Nats-Msg-Id``: a second publish of one
    already stored is a duplicate, not a second event."""
    deadline = time.monotonic() + PUBLISH_HOLD_S
    delay = PAUSE_S[0]
    while True:  # bounded by the deadline and keep_waiting()
        try:
            await publish_confirmed(js, outgoing, timeout_s)
            return
        except PublishFailed:
            if not keep_waiting() or time.monotonic() + delay > deadline:
                raise
            log.warning("publish not confirmed; batch held, publishing again", exc_info=True)
        await asyncio.sleep(delay)
        delay = min(2 * delay, PUBLISH_RETRY_MAX_S)
        with contextlib.suppress(Exception):  # NATS away: the batch comes back by itself
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
        paused_for = time.monotonic() - paused_since
        await asyncio.sleep(min(max(paused_for / 2, PAUSE_S[0]), PAUSE_S[1]))
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
