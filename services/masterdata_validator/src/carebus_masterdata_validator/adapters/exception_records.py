"""Quarantined events in the shared exception store, written in the caller's transaction.

A parked event is recorded once per failed reference (so each reason and offending value is
listed), and the records are resolved when the event is released or discarded.
"""

from __future__ import annotations

from typing import Any

from carebus_contracts import encode, headers_for, subject_for
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.events import exception_event
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing


async def record(
    conn: Any, records: list[ExceptionRecord], *, reannounce: bool = True
) -> list[Outgoing]:
    """Store ``records`` (once each) and return their exception events to publish.

    With ``reannounce``, a record already stored (a redelivered batch whose events were not
    confirmed) yields its event again under the same id, so JetStream keeps exactly one.
    """
    outgoing = []
    for rec in records:
        record_id = await exception_store.record(conn, rec)
        if record_id is None:
            if not reannounce:
                continue
            record_id = await conn.fetchval(
                "SELECT id FROM carebus_exceptions.exception_record WHERE dedupe_key = $1",
                rec.dedupe_key,
            )
        event = exception_event(rec, int(record_id))
        if event is not None:
            outgoing.append(
                Outgoing(subject_for(event), encode(event), event.event_id, headers_for(event))
            )
    return outgoing


async def resolve_for(
    conn: Any, stage_prefix: str, stream: str, stream_seq: int, status: str, by: str, note: str
) -> int:
    """Resolve the open records of one parked message; how many were resolved."""
    ids = await conn.fetch(
        "SELECT id FROM carebus_exceptions.exception_record WHERE stream = $1 AND stream_seq = $2 "
        "AND status = 'open' AND stage LIKE $3",
        stream,
        stream_seq,
        stage_prefix + "%",
    )
    resolved = 0
    for row in ids:
        resolved += await exception_store.resolve(conn, row["id"], status, by, note)
    return resolved
