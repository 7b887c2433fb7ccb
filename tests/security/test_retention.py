"""Retention of kept inputs (docs/decisions/028) on real PostgreSQL, with rows backdated:
`carebus purge` nulls what resolved records kept past the retention, closes open records
past theirs, deletes old inbox files, and says so in the audit log (with from where)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from carebus_shared import audit, retention
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.exceptions import store
from carebus_shared.exceptions.store import ExceptionRecord
from tests.support.billing import fresh_database


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(database_url) as url:
        connection = await asyncpg.connect(url)
        await migrate(connection, store.OWNER, load_migrations("carebus_shared.exceptions"))
        await migrate(connection, audit.OWNER, load_migrations(audit.PACKAGE))
        try:
            yield connection
        finally:
            await connection.close()


async def _kept(conn: asyncpg.Connection, *, status: str, age_days: int) -> int:
    record_id = await store.record(
        conn,
        ExceptionRecord(
            dedupe_key=uuid.uuid4().hex, stage="scheduling-adapter", category="mapping",
            reason="parse_error", message="PID-7: not an HL7 timestamp", source="hl7",
            raw=b"PID|1||QZXMRN778812", offending_value="QZXDOB1902",
        ),
    )  # fmt: skip
    assert record_id is not None
    if status != "open":
        sent = b"corrected QZXMRN778812"
        assert await store.resolve(conn, record_id, status, "alice", "done", sent=sent)
    await conn.execute(
        "UPDATE carebus_exceptions.exception_record SET recorded_at = now() - make_interval("
        "days => $2), resolved_at = CASE WHEN status = 'open' THEN NULL "
        "ELSE now() - make_interval(days => $2) END WHERE id = $1",
        record_id,
        age_days,
    )
    return record_id


async def _row(conn: asyncpg.Connection, record_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status, raw, offending_value, (SELECT array_agg(sent_body IS NULL) FROM "
        "carebus_exceptions.exception_action WHERE record_id = $1) AS sent_gone "
        "FROM carebus_exceptions.exception_record WHERE id = $1",
        record_id,
    )
    assert row is not None
    return row


async def test_purge_nulls_what_is_past_retention_and_audits_it(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    old_resolved = await _kept(conn, status="redriven", age_days=31)
    new_resolved = await _kept(conn, status="discarded", age_days=29)
    old_open = await _kept(conn, status="open", age_days=400)
    young_open = await _kept(conn, status="open", age_days=31)
    inbox = tmp_path / "inbox"
    for folder in ("done", "rejected"):
        (inbox / folder).mkdir(parents=True)
    aged, fresh = inbox / "rejected" / "old.835", inbox / "done" / "new.835"
    aged.write_bytes(b"sealed")
    fresh.write_bytes(b"sealed")
    moved_at = time.time() - 31 * 86400
    os.utime(aged, (moved_at, moved_at))

    done = await retention.purge(
        conn, resolved_days=30, open_days=365, inboxes=(inbox,), client_address="10.0.0.7"
    )
    assert (done.resolved, done.sent_bodies, done.open_closed, done.files) == (1, 1, 1, 1)

    gone = await _row(conn, old_resolved)
    assert (gone["raw"], gone["offending_value"], gone["sent_gone"]) == (None, None, [True])
    kept = await _row(conn, new_resolved)
    assert kept["raw"] is not None
    assert kept["sent_gone"] == [False]
    closed = await _row(conn, old_open)
    assert (closed["status"], closed["raw"]) == ("discarded", None)
    [action] = await store.history(conn, old_open)
    assert (action["actor"], action["action"]) == (retention.RETENTION_ACTOR, "discard")
    assert (await _row(conn, young_open))["raw"] is not None
    assert not aged.exists()
    assert fresh.exists()

    [entry] = await audit.entries(conn, action="purge")
    assert audit.detail_of(entry)["resolved"] == 1
    assert entry.client_address == "10.0.0.7"
    assert await audit.verify(conn) is None

    again = await retention.purge(conn, resolved_days=30, open_days=365, inboxes=(inbox,))
    assert (again.resolved, again.open_closed, again.files) == (0, 0, 0)  # nothing twice


async def test_a_retention_under_a_day_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        await retention.purge(conn, resolved_days=0)
