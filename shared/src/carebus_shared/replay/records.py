"""The record of every replay (PostgreSQL, schema carebus_replay; applied by `carebus
provision`): written when it starts, after every chunk, and when it ends."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from carebus_shared.jetstream.window import Span
from carebus_shared.replay.republish import Tally

OWNER = "carebus_replay"
PACKAGE = "carebus_shared.replay"
OUTCOMES = ("running", "completed", "failed", "interrupted")


@dataclass(frozen=True)
class Replay:
    """One row of ``carebus_replay.replay``."""

    id: int
    actor: str
    stream: str
    stage: str
    consumer: str
    subject: str
    from_seq: int | None
    to_seq: int | None
    since: dt.datetime | None
    until: dt.datetime | None
    end_seq: int
    expected: int
    read: int
    republished: int
    skipped: int
    duplicates: int
    last_seq: int | None
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    error: str | None


async def start(conn: Any, actor: str, stage: str, consumer: str, span: Span) -> int:
    """Record a replay that starts now; its id (part of every copy's message id)."""
    w = span.window
    return int(
        await conn.fetchval(
            "INSERT INTO carebus_replay.replay (actor, stream, stage, consumer, subject, "
            "from_seq, to_seq, since, until, end_seq, expected) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            actor,
            span.stream,
            stage,
            consumer,
            span.subject,
            w.from_seq,
            w.to_seq,
            w.since,
            w.until,
            span.end_seq,
            span.count,
        )
    )


_PROGRESS = (
    "UPDATE carebus_replay.replay SET read = $2, republished = $3, skipped = $4, "
    "duplicates = $5, last_seq = $6, updated_at = now()"
)


async def progress(conn: Any, replay_id: int, tally: Tally) -> None:
    await conn.execute(f"{_PROGRESS} WHERE id = $1", replay_id, *_counts(tally))


async def finish(
    conn: Any, replay_id: int, tally: Tally, outcome: str, error: str | None = None
) -> None:
    if outcome not in OUTCOMES[1:]:
        raise ValueError(f"a replay ends {', '.join(OUTCOMES[1:])}, not {outcome!r}")
    await conn.execute(
        f"{_PROGRESS}, finished_at = now(), outcome = $7, error = $8 WHERE id = $1",
        replay_id,
        *_counts(tally),
        outcome,
        error,
    )


def _counts(tally: Tally) -> tuple[int, int, int, int, int | None]:
    return tally.read, tally.republished, tally.skipped, tally.duplicates, tally.last_seq


async def recent(conn: Any, limit: int = 20) -> list[Replay]:
    rows = await conn.fetch(
        "SELECT * FROM carebus_replay.replay ORDER BY started_at DESC, id DESC LIMIT $1", limit
    )
    return [Replay(**dict(row)) for row in rows]


async def get(conn: Any, replay_id: int) -> Replay | None:
    row = await conn.fetchrow("SELECT * FROM carebus_replay.replay WHERE id = $1", replay_id)
    return None if row is None else Replay(**dict(row))
