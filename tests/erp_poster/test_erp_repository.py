"""The poster's own tables as the handler uses them: states written as one JSON parameter come
back exactly, inbox rows and states are written together, and one lookup answers both "which
requests were handled" and "where do these journals stand"."""

from __future__ import annotations

import datetime as dt

import asyncpg
import msgspec

from carebus_erp_poster.adapters import repository as repo
from carebus_erp_poster.domain.journals import JournalState, Status

CONSUMER = "erp-poster"
AT = dt.datetime(2025, 3, 14, 9, 15, 30, 123456, tzinfo=dt.UTC)


def state(journal_id: str, **fields: object) -> JournalState:
    base = JournalState(
        journal_id=journal_id,
        connector="ledger",
        attempt=0,
        status=Status.PENDING,
        event_id=f"evt-{journal_id}",
        site="SITE01",
        correlation_id=f"corr-{journal_id}",
        entity_version=1,
        stream_seq=42,
        subject="erp.journal.requested.v1.SITE01",
    )
    return msgspec.structs.replace(base, **fields)


async def test_states_round_trip_exactly(conn: asyncpg.Connection) -> None:
    written = [
        state("JE-rt-1", erp_request_id="REQ-1", posted_at=AT),
        state(
            "JE-rt-2",
            status=Status.CONFIRMED,
            erp_request_id="GL-0000000002",
            posted_at=AT,
            confirmed_at=AT + dt.timedelta(microseconds=1),
            document_number="GL-0000000002",
            fiscal_period="2025-03",
            entity_version=2**40,
        ),
        state(
            "JE-rt-3",
            status=Status.REJECTED,
            attempt=1,
            rejected_at=dt.datetime(2025, 3, 14, 4, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            error_code="unknown_account",
            error_message='account "9999" is not open \\ ünïcode ✓',
        ),
    ]
    async with conn.transaction():
        await repo.record(conn, CONSUMER, [("evt-JE-rt-1", "JE-rt-1")], written, 2.0)
    found = await repo.states(conn, [s.journal_id for s in written])
    assert [found[s.journal_id] for s in written] == written
    pending = await conn.fetchval(
        "SELECT count(*) FROM carebus_erp_poster.journal_status "
        "WHERE next_check_at IS NOT NULL AND journal_id LIKE 'JE-rt-%'"
    )
    assert pending == 1  # only the pending journal is due for a confirmation check


async def test_a_confirmed_state_is_final(conn: asyncpg.Connection) -> None:
    confirmed = state("JE-final", status=Status.CONFIRMED, document_number="GL-1", posted_at=AT)
    await repo.save_states(conn, [confirmed], 2.0)
    await repo.save_states(conn, [state("JE-final", status=Status.PENDING)], 2.0)
    assert (await repo.states(conn, ["JE-final"]))["JE-final"] == confirmed


async def test_record_writes_inbox_rows_without_states_and_ignores_repeats(
    conn: asyncpg.Connection,
) -> None:
    await repo.save_states(conn, [state("JE-inbox")], 2.0)
    await repo.record(conn, CONSUMER, [("evt-inbox-a", "JE-inbox")], [], 2.0)
    await repo.record(conn, CONSUMER, [("evt-inbox-a", "JE-inbox")], [], 2.0)
    rows = await conn.fetch(
        "SELECT event_id, journal_id FROM carebus_erp_poster.inbox WHERE journal_id = 'JE-inbox'"
    )
    assert [tuple(r) for r in rows] == [("evt-inbox-a", "JE-inbox")]


async def test_lookup_keys_handled_requests_by_their_own_event_id(
    conn: asyncpg.Connection,
) -> None:
    # The journal was posted by one request, then re-sent under another event id: both are in
    # the inbox, and the journal state names the request that posted it.
    posted = state("JE-look", status=Status.CONFIRMED, event_id="evt-look", posted_at=AT)
    inbox = [("evt-look", "JE-look"), ("evt-look-resent", "JE-look")]
    await repo.record(conn, CONSUMER, inbox, [posted], 2.0)
    await repo.save_states(conn, [state("JE-other")], 2.0)

    handled, current = await repo.lookup(
        conn, CONSUMER, ["evt-look-resent", "evt-new"], ["JE-look", "JE-other", "JE-unknown"]
    )

    assert handled == {"evt-look-resent": posted}
    assert current == {"JE-look": posted, "JE-other": state("JE-other")}
    assert await repo.lookup(conn, "another-consumer", ["evt-look"], []) == ({}, {})
