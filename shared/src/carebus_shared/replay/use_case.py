"""The replay use case: plan it (the target stage's consumer, nobody else receiving the
copies, the window measured), then either survey it (a dry run) or replay it, recorded.

The stage keeps running throughout: the copies are new messages on its durable consumer,
and its own idempotency (deterministic output ids, the mapper's fencing, the poster's inbox
and ledger keys) makes a copy of what it already applied a no-op (docs/decisions/015).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_shared import audit
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.jetstream.window import Span, Window, WindowStalled, measure
from carebus_shared.replay import records
from carebus_shared.replay.progress import Progress
from carebus_shared.replay.republish import (
    CHUNK,
    StageNotTaking,
    Survey,
    Tally,
    backlog_gate,
    republish,
    survey,
)
from carebus_shared.replay.targets import (
    OtherConsumer,
    ReplayRefused,
    Target,
    others_receiving,
    refusal_for_others,
    resolve,
)

# What ends a replay as "failed" (recorded, with the last sequence done) rather than a crash.
REPLAY_ERRORS = (WindowStalled, StageNotTaking, *DEPENDENCY_ERRORS)
_PAGES = 100  # consumer listings of 256 each: far more than a stream ever has


@dataclass(frozen=True)
class Request:
    stream: str
    into: str
    window: Window
    subject: str | None = None


@dataclass(frozen=True)
class Plan:
    target: Target
    span: Span

    @property
    def label(self) -> str:
        return f"{self.span.stream} → {self.target.consumer.durable}"


@dataclass(frozen=True)
class Settings:
    chunk_size: int = CHUNK
    max_backlog: int = 2_000  # copies the stage may have waiting before the replay waits
    patience_s: float = 300.0  # how long the replay waits for the stage to take them


@dataclass(frozen=True)
class Result:
    replay_id: int
    plan: Plan
    tally: Tally
    outcome: str
    elapsed_s: float
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.tally.read / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def _durables(js: JetStreamContext, stream: str) -> list[OtherConsumer]:
    found: list[OtherConsumer] = []
    listed = 0
    for _ in range(_PAGES):
        page = await js.consumers_info(stream, offset=listed or None)
        listed += len(page)
        for info in page:
            config = info.config
            filters = tuple(config.filter_subjects or ()) or (
                (config.filter_subject,) if config.filter_subject else ()
            )
            # Ephemeral consumers (readers such as this one's) have no durable name.
            if config.durable_name:
                found.append(OtherConsumer(config.durable_name, filters))
        if len(page) < 256:
            break
    return found


async def plan(js: JetStreamContext, request: Request) -> Plan:
    """Raises ``ReplayRefused`` naming what is wrong and what to do."""
    target = resolve(request.into, request.stream, request.subject)
    stream = target.consumer.stream
    try:
        durables = await _durables(js, stream)
    except NotFoundError as exc:
        raise ReplayRefused(f"stream {stream} does not exist: run `carebus provision`") from exc
    missing = [name for name in target.receiving if name not in {c.name for c in durables}]
    if missing:
        names = ", ".join(missing)
        raise ReplayRefused(f"consumer {names} does not exist: run `carebus provision`")
    others = others_receiving(target, durables)
    if others:
        raise ReplayRefused(refusal_for_others(target, others))
    return Plan(target, await measure(js, stream, target.subject, request.window))


async def dry_run(js: JetStreamContext, planned: Plan, progress: Progress) -> Survey:
    progress.start(f"dry run {planned.label}", planned.span.count)
    try:
        return await survey(js, planned.span, progress.update)
    finally:
        progress.close()


async def replay(
    js: JetStreamContext,
    conn: Any,
    planned: Plan,
    actor: str,
    progress: Progress,
    settings: Settings = Settings(),
) -> Result:
    """Replay ``planned`` and record it (and audit its start and its end); a failure is
    recorded and returned, not raised."""
    target, span = planned.target, planned.span
    replay_id = await records.start(conn, actor, target.stage, target.consumer.durable, span)
    await _audit(conn, actor, planned, replay_id, "started", None)
    tally = Tally()
    gate = backlog_gate(
        js,
        span.stream,
        target.receiving,
        settings.max_backlog,
        name=target.consumer.durable,
        patience_s=settings.patience_s,
    )

    async def after_chunk(done: Tally) -> None:
        progress.update(done.read)
        await records.progress(conn, replay_id, done)

    progress.start(f"replay {replay_id} {planned.label}", span.count)
    started = time.monotonic()
    outcome = "interrupted"
    error: str | None = "stopped before the end (Ctrl-C)"
    try:
        await republish(
            js,
            span,
            replay_id,
            tally,
            chunk_size=settings.chunk_size,
            before_chunk=gate,
            after_chunk=after_chunk,
        )
        outcome, error = "completed", None
    except REPLAY_ERRORS as exc:
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        elapsed = time.monotonic() - started
        progress.close()
        # Also when cancelled: the record says how far it got.
        await asyncio.shield(_finish(conn, actor, planned, replay_id, tally, outcome, error))
    return Result(replay_id, planned, tally, outcome, elapsed, error)


async def _finish(
    conn: Any, actor: str, planned: Plan, replay_id: int, tally: Tally, outcome: str,
    error: str | None,
) -> None:  # fmt: skip
    await records.finish(conn, replay_id, tally, outcome, error)
    await _audit(conn, actor, planned, replay_id, outcome, tally)


async def _audit(
    conn: Any, actor: str, planned: Plan, replay_id: int, outcome: str, tally: Tally | None
) -> None:
    span = planned.span
    await audit.record(
        conn, actor=actor, action="replay", target_kind="replay", target_id=replay_id,
        outcome=outcome,
        detail={
            "stream": span.stream, "into": planned.target.consumer.durable,
            "subject": span.subject, "end_seq": span.end_seq, "expected": span.count,
            "republished": None if tally is None else tally.republished,
        },
    )  # fmt: skip
