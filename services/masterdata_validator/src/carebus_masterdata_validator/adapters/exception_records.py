"""Quarantined events in the shared exception store, written in the caller's transaction.

A parked event is recorded once per failed reference (so each reason and offending value is
listed), and the records are resolved when the event is released or discarded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.events import exception_event
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing, outgoing_for


async def announce(
    conn: Any, records: Sequence[ExceptionRecord], *, reannounce: bool = True
) -> list[Outgoing | None]:
    """Store ``records`` (once each, in one statement) and return, per record, its
    exception event to publish (None: nothing to announce).

    With ``reannounce``, a record already stored (a redelivered batch whose events were not
    confirmed) yields its event again under the same id, so JetStream keeps exactly one.
    """
    ids = await exception_store.record_all(conn, records)
    if reannounce and None in ids:
        known = {
            row["dedupe_key"]: int(row["id"])
            for row in await conn.fetch(
                "SELECT id, dedupe_key FROM carebus_exceptions.exception_record "
                "WHERE dedupe_key = ANY($1::text[])",
                [rec.dedupe_key for rec, id_ in zip(records, ids, strict=True) if id_ is None],
            )
        }
        ids = [
            known.get(rec.dedupe_key) if id_ is None else id_
            for rec, id_ in zip(records, ids, strict=True)
        ]
    announced: list[Outgoing | None] = []
    for rec, record_id in zip(records, ids, strict=True):
        event = None if record_id is None else exception_event(rec, record_id)
        announced.append(None if event is None else outgoing_for(event))
    return announced


async def record(
    conn: Any, records: Sequence[ExceptionRecord], *, reannounce: bool = True
) -> list[Outgoing]:
    """Store ``records`` and return their exception events to publish (see ``announce``)."""
    return [out for out in await announce(conn, records, reannounce=reannounce) if out]


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
