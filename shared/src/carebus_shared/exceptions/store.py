"""Writing, listing and resolving exception records (PostgreSQL, schema carebus_exceptions)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from carebus_shared import crypto

OWNER = "carebus_exceptions"
# revenue_integrity: a gap found by watching (a completed visit without a charge), not a
# failed input; receiver_rejection: an outbound feed's receiver refused (docs/decisions/025).
CATEGORIES = (
    "contract", "masterdata", "mapping", "erp_rejection", "transport", "revenue_integrity",
    "receiver_rejection",
)  # fmt: skip


@dataclass(frozen=True)
class ExceptionRecord:
    dedupe_key: str
    stage: str
    category: str
    reason: str
    message: str
    source: str
    site: str | None = None
    event_id: str | None = None
    stream: str | None = None
    stream_seq: int | None = None
    subject: str | None = None
    content_type: str | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    offending_value: str | None = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, not {self.category!r}")


_COLUMNS = (
    "dedupe_key", "stage", "category", "reason", "message", "source", "site", "event_id",
    "stream", "stream_seq", "subject", "content_type", "raw", "headers", "path",
    "offending_value",
)  # fmt: skip
_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "bigint", "text", "text", "bytea", "jsonb", "text", "text",
)  # fmt: skip
# One statement for any number of records (a remittance file from an unknown payer parks
# hundreds of events at once: one round trip each held the batch up; docs/decisions/009).
_INSERT_ALL = f"""
INSERT INTO carebus_exceptions.exception_record ({", ".join(_COLUMNS)})
SELECT * FROM unnest({", ".join(f"${n}::{t}[]" for n, t in enumerate(_TYPES, 1))})
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, dedupe_key
"""


def storable(text: str) -> str:
    """PostgreSQL text and jsonb take neither NUL nor a lone surrogate: a NUL becomes U+FFFD,
    a lone surrogate "?". Only the columns that describe an input are cleaned; the input
    itself is kept byte for byte (``raw``), so a re-drive sees what was sent."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode(errors="replace").decode()
    return text


def _text(value: str | None) -> str | None:
    return None if value is None else storable(value)


def _values(rec: ExceptionRecord) -> tuple[Any, ...]:
    headers = {storable(k): storable(v) for k, v in rec.headers.items()}
    return (
        storable(rec.dedupe_key), rec.stage, rec.category, storable(rec.reason),
        storable(rec.message), storable(rec.source), _text(rec.site), _text(rec.event_id),
        rec.stream, rec.stream_seq, _text(rec.subject), _text(rec.content_type),
        crypto.seal(rec.raw), msgspec.json.encode(headers).decode(), _text(rec.path),
        crypto.seal_text(_text(rec.offending_value)),
    )  # fmt: skip


async def record_all(conn: Any, recs: Sequence[ExceptionRecord]) -> list[int | None]:
    """Store ``recs`` in one statement; per record, its new id, or None when the same
    failure was already recorded (before, or earlier in ``recs``)."""
    if not recs:
        return []
    columns = [list(column) for column in zip(*(_values(rec) for rec in recs), strict=True)]
    new = {row["dedupe_key"]: int(row["id"]) for row in await conn.fetch(_INSERT_ALL, *columns)}
    return [new.pop(rec.dedupe_key, None) for rec in recs]


async def record(conn: Any, rec: ExceptionRecord) -> int | None:
    """Store ``rec``; return its id, or None when the same failure was already recorded."""
    return (await record_all(conn, [rec]))[0]


async def list_open(conn: Any, limit: int = 100, stage: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, recorded_at, stage, category, reason, message, source, site, event_id, "
        "stream, stream_seq FROM carebus_exceptions.exception_record "
        "WHERE status = 'open' AND ($1::text IS NULL OR stage = $1) ORDER BY id LIMIT $2",
        stage,
        limit,
    )
    return [dict(row) for row in rows]


async def get(conn: Any, record_id: int) -> dict[str, Any] | None:
    """The record, its kept input and offending value opened (docs/decisions/028)."""
    row = await conn.fetchrow(
        "SELECT * FROM carebus_exceptions.exception_record WHERE id = $1", record_id
    )
    if row is None:
        return None
    found = dict(row)
    found["raw"] = crypto.unseal(found["raw"])
    found["offending_value"] = crypto.unseal_text(found["offending_value"])
    return found


# auto_resolve: what the record waited for arrived (the charge of a completed visit).
ACTIONS = ("redrive", "bulk_redrive", "discard", "auto_resolve")
_ACTION_OF_STATUS = {"redriven": "redrive", "discarded": "discard", "resolved": "auto_resolve"}
_ACTION_COLUMNS = "record_id, actor, action, outcome, note, sent_sha256, sent_bytes, sent_body"


def _sent(body: bytes | None) -> tuple[str | None, int | None, bytes | None]:
    if body is None:
        return None, None, None
    return hashlib.sha256(body).hexdigest(), len(body), crypto.seal(body)


async def resolve(
    conn: Any,
    record_id: int,
    status: str,
    by: str,
    note: str = "",
    *,
    action: str | None = None,
    sent: bytes | None = None,
) -> bool:
    """Mark an open record redriven, discarded or resolved and append the action to its history, in
    one statement; False (and no history) if it was not open. ``sent`` is the corrected
    input sent instead of the stored one, if any."""
    if status not in _ACTION_OF_STATUS:
        raise ValueError("status must be 'redriven', 'discarded' or 'resolved'")
    action = action or _ACTION_OF_STATUS[status]
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    result = await conn.execute(
        "WITH resolved AS (UPDATE carebus_exceptions.exception_record SET status = $2, "
        "resolved_at = now(), resolved_by = $3, resolution_note = $4 "
        "WHERE id = $1 AND status = 'open' RETURNING id) "
        f"INSERT INTO carebus_exceptions.exception_action ({_ACTION_COLUMNS}) "
        "SELECT id, $3, $5, $2, $4, $6, $7, $8 FROM resolved",
        record_id,
        status,
        storable(by),
        storable(note),
        action,
        *_sent(sent),
    )
    return str(result).endswith(" 1")


async def append_action(
    conn: Any,
    record_id: int,
    actor: str,
    action: str,
    outcome: str,
    note: str = "",
    sent: bytes | None = None,
) -> None:
    """Record an action that left the record as it was (a re-drive rejected again)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    await conn.execute(
        f"INSERT INTO carebus_exceptions.exception_action ({_ACTION_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        record_id,
        storable(actor),
        action,
        outcome,
        storable(note),
        *_sent(sent),
    )


async def history(conn: Any, record_id: int) -> list[dict[str, Any]]:
    """Every action on the record, oldest first."""
    rows = await conn.fetch(
        "SELECT id, at, actor, action, outcome, note, sent_sha256, sent_bytes, sent_body "
        "FROM carebus_exceptions.exception_action WHERE record_id = $1 ORDER BY id",
        record_id,
    )
    return [{**row, "sent_body": crypto.unseal(row["sent_body"])} for row in rows]


def decode_headers(value: Any) -> dict[str, str]:
    """asyncpg returns jsonb as text unless a codec is set; accept both."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    decoded = msgspec.json.decode(value or "{}")
    return {str(k): str(v) for k, v in decoded.items()}
