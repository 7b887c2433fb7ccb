"""PostgreSQL access to parked events (schema carebus_masterdata_validator, parked_event).

Ordering per entity: in-flight batches take the quarantine lock *shared* while they check for
and add parked events; a release takes it *exclusive* while it re-validates, publishes and
removes them. So an event is never parked behind a queue that a release has just emptied,
and nothing of an entity is published ahead of its parked predecessors. The scan for who
waits on a change takes it *exclusive* too, so it sees every park whose checks ran before
that change (docs/decisions/021).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from carebus_masterdata_validator.config import SCHEMA
from carebus_shared import crypto
from carebus_shared.exceptions.store import decode_headers

QUARANTINE_LOCK = 0x6D64_0B02

_T = f"{SCHEMA}.parked_event"


class FailureRow(msgspec.Struct, frozen=True):
    reason: str
    path: str
    offending_value: str
    message: str


@dataclass(frozen=True)
class NewParked:
    event_id: str
    entity: str
    stream: str
    stream_seq: int
    subject: str
    headers: dict[str, str]
    raw: bytes
    event_type: str
    site: str
    failures: tuple[FailureRow, ...]  # empty: queued behind an earlier parked event
    missing_keys: tuple[str, ...]


@dataclass(frozen=True)
class Parked:
    id: int
    event_id: str
    entity: str
    stream: str
    stream_seq: int
    subject: str
    headers: dict[str, str]
    raw: bytes
    event_type: str
    site: str
    parked_at: datetime
    failures: tuple[FailureRow, ...]
    missing_keys: tuple[str, ...]
    attempts: int
    last_attempt_at: datetime | None


_decode_failures = msgspec.json.Decoder(tuple[FailureRow, ...]).decode


def _sealed(failures: tuple[FailureRow, ...]) -> bytes | None:
    """The failures quote the offending values: sealed like the raw input (migration 004)."""
    return crypto.seal(msgspec.json.encode(failures))


def _parked(row: Any) -> Parked:
    return Parked(
        id=row["id"],
        event_id=row["event_id"],
        entity=row["entity"],
        stream=row["stream"],
        stream_seq=row["stream_seq"],
        subject=row["subject"],
        headers=decode_headers(row["headers"]),
        raw=crypto.unseal(row["raw"]) or b"",  # sealed at rest (docs/decisions/028)
        event_type=row["event_type"],
        site=row["site"],
        parked_at=row["parked_at"],
        failures=_decode_failures(crypto.unseal(row["failures"]) or b"[]"),
        missing_keys=tuple(row["missing_keys"]),
        attempts=row["attempts"],
        last_attempt_at=row["last_attempt_at"],
    )


async def lock_shared(conn: Any) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", QUARANTINE_LOCK)


async def lock_exclusive(conn: Any) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", QUARANTINE_LOCK)


async def parked_entities(conn: Any, entities: list[str]) -> set[str]:
    """Which of ``entities`` have parked events (one query for a whole batch)."""
    rows = await conn.fetch(
        f"SELECT DISTINCT entity FROM {_T} WHERE entity = ANY($1::text[])", entities
    )
    return {row["entity"] for row in rows}


async def park(conn: Any, rows: list[NewParked]) -> None:
    """Add rows; an event already parked (a redelivery) is left as it is."""
    if not rows:
        return
    await conn.executemany(
        f"INSERT INTO {_T} (event_id, entity, stream, stream_seq, subject, headers, raw, "
        "event_type, site, reasons, failures, missing_keys) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (event_id) DO NOTHING",
        [
            (
                r.event_id,
                r.entity,
                r.stream,
                r.stream_seq,
                r.subject,
                msgspec.json.encode(r.headers).decode(),
                crypto.seal(r.raw),
                r.event_type,
                r.site,
                [f.reason for f in r.failures],
                _sealed(r.failures),
                list(r.missing_keys),
            )
            for r in rows
        ],
    )


async def entities_waiting_for(conn: Any, keys: list[str], limit: int) -> list[str]:
    rows = await conn.fetch(
        f"SELECT entity, min(stream_seq) FROM {_T} WHERE missing_keys && $1::text[] "
        "GROUP BY entity ORDER BY min(stream_seq) LIMIT $2",
        keys,
        limit,
    )
    return [row["entity"] for row in rows]


async def all_entities(conn: Any, limit: int) -> list[str]:
    """Entities with parked events, those parked longest first."""
    rows = await conn.fetch(
        f"SELECT entity, min(parked_at) FROM {_T} GROUP BY entity ORDER BY min(parked_at) LIMIT $1",
        limit,
    )
    return [row["entity"] for row in rows]


async def queue_of(conn: Any, entity: str) -> list[Parked]:
    rows = await conn.fetch(f"SELECT * FROM {_T} WHERE entity = $1 ORDER BY stream_seq", entity)
    return [_parked(row) for row in rows]


async def get(conn: Any, parked_id: int) -> Parked | None:
    row = await conn.fetchrow(f"SELECT * FROM {_T} WHERE id = $1", parked_id)
    return _parked(row) if row is not None else None


async def remove(conn: Any, ids: list[int]) -> None:
    await conn.execute(f"DELETE FROM {_T} WHERE id = ANY($1::bigint[])", ids)


async def still_failing(
    conn: Any, parked_id: int, failures: tuple[FailureRow, ...], missing_keys: tuple[str, ...]
) -> None:
    await conn.execute(
        f"UPDATE {_T} SET reasons = $2, failures = $3, missing_keys = $4, "
        "attempts = attempts + 1, last_attempt_at = now() WHERE id = $1",
        parked_id,
        [f.reason for f in failures],
        _sealed(failures),
        list(missing_keys),
    )


async def list_page(
    conn: Any,
    *,
    entity_key: str | None,
    reason: str | None,
    site: str | None,
    after_id: int | None,
    limit: int,
) -> list[Parked]:
    rows = await conn.fetch(
        f"SELECT * FROM {_T} "
        "WHERE ($1::text IS NULL OR substr(entity, strpos(entity, ':') + 1) = $1) "
        "AND ($2::text IS NULL OR $2 = ANY(reasons)) AND ($3::text IS NULL OR site = $3) "
        "AND ($4::bigint IS NULL OR id > $4) ORDER BY id LIMIT $5",
        entity_key,
        reason,
        site,
        after_id,
        limit,
    )
    return [_parked(row) for row in rows]


async def stats(conn: Any) -> tuple[int, datetime | None]:
    row = await conn.fetchrow(f"SELECT count(*) AS n, min(parked_at) AS oldest FROM {_T}")
    return int(row["n"]), row["oldest"]
