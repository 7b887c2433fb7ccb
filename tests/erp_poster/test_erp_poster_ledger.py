"""The poster process with the ledger connector, against real NATS and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import decode_as
from carebus_contracts.erp import JournalConfirmed
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.erp_poster import (
    consumer_idle,
    eventually,
    journal,
    poster_process,
    private_database,
    provision_short,
    publish_journals,
    query,
    scalar,
    subject_counts,
    wait_ready,
)
from tests.support.service_process import ServiceProcess, http_get


@pytest.fixture
async def erp_db(database_url: str) -> AsyncIterator[str]:
    async for dsn in private_database(database_url):
        yield dsn


@pytest.fixture
async def erp_js(private_nats: NatsServer) -> AsyncIterator[JetStreamContext]:
    await provision_short(private_nats.url)
    nc = await nats.connect(private_nats.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
def poster(private_nats: NatsServer, erp_db: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = poster_process(private_nats.url, erp_db, tmp_path / "poster.log", batch_size=50)
    yield process.start()
    process.kill()


async def test_journals_are_booked_once_confirmed_and_visible_in_the_trial_balance(
    erp_js: JetStreamContext, erp_db: str, poster: ServiceProcess
) -> None:
    journals = [journal("led", i, amount_minor=1_000 + i) for i in range(300)]
    # The same journal requested again under a new event id (a mapper re-send) is one journal.
    resent = journal("led", 7, amount_minor=1_007, event_suffix="-resent")
    await publish_journals(erp_js, [*journals, resent])
    await wait_ready(poster)

    async def all_confirmed() -> bool:
        return await subject_counts(erp_js, "erp.journal.confirmed.v1.>") >= 300

    await eventually(all_confirmed, 60, "300 confirmed journals")
    await eventually(lambda: consumer_idle(erp_js), 30, "every request acknowledged")

    assert await scalar(erp_db, "SELECT count(*) FROM carebus_erp_poster.journal_entry") == 300
    assert await scalar(erp_db, "SELECT count(*) FROM carebus_erp_poster.journal_line") == 600
    assert await subject_counts(erp_js, "erp.journal.posted.v1.>") == 300
    assert await subject_counts(erp_js, "erp.journal.confirmed.v1.>") == 300
    expected = sum(1_000 + i for i in range(300))
    [row] = await query(
        erp_db,
        "SELECT debit_minor, credit_minor, balance_minor, entries "
        "FROM carebus_erp_poster.trial_balance_by_account WHERE account = '1200'",
    )
    assert tuple(row) == (expected, 0, expected, 300)
    statuses = await query(
        erp_db,
        "SELECT status, count(*) FROM carebus_erp_poster.journal_status GROUP BY status",
    )
    assert [tuple(r) for r in statuses] == [("confirmed", 300)]
    inbox = await scalar(erp_db, "SELECT count(*) FROM carebus_erp_poster.inbox")
    assert inbox == 301  # both requests of the re-sent journal are recorded as handled

    sub = await erp_js.pull_subscribe("erp.journal.confirmed.v1.>", stream="ERP")
    [first] = await sub.fetch(1, timeout=5)
    confirmed = decode_as(JournalConfirmed, first.data)
    assert confirmed.erp_document_number.startswith("GL-")
    assert confirmed.fiscal_period == "2025-03"

    status, body = http_get(f"{poster.base}/metrics")
    assert status == 200
    assert b'carebus_erp_poster_journals_total{connector="ledger",outcome="posted"} 300.0' in body
    assert b"carebus_erp_poster_pending_journals 0.0" in body
    assert b"carebus_erp_poster_oldest_pending_age_seconds" in body
    status, body = http_get(f"{poster.base}/journals/JE-led-7")
    assert status == 200
    assert b'"status":"confirmed"' in body
    assert http_get(f"{poster.base}/journals/JE-nope")[0] == 404


async def test_unpostable_and_undecodable_requests_go_to_the_exception_store(
    erp_js: JetStreamContext, erp_db: str, poster: ServiceProcess
) -> None:
    unbalanced = journal("bad", 1, amount_minor=500, credit_minor=499)
    await publish_journals(erp_js, [unbalanced, journal("bad", 2)])
    await erp_js.publish(
        "erp.journal.requested.v1.SITE01",
        b'{"event_type": "erp.journal.requested", "schema_version": "1.0", "lines": 3}',
        headers={"Nats-Msg-Id": "garbage-1", "Carebus-Schema-Version": "1.0"},
    )
    await wait_ready(poster)

    async def recorded() -> bool:
        n = await scalar(erp_db, "SELECT count(*) FROM carebus_exceptions.exception_record")
        return bool(n == 2)

    await eventually(recorded, 30, "two exception records")
    await eventually(lambda: consumer_idle(erp_js), 30, "every request settled")
    rows = await query(
        erp_db,
        "SELECT category, reason, event_id, path FROM carebus_exceptions.exception_record "
        "ORDER BY stream_seq",
    )
    assert [(r["category"], r["reason"], r["event_id"]) for r in rows] == [
        ("mapping", "journal_not_postable", "evt-bad-1"),
        ("contract", "undecodable_journal", None),
    ]
    assert rows[1]["path"] == "$.lines"  # where the contract broke
    keys = await query(erp_db, "SELECT idempotency_key FROM carebus_erp_poster.journal_entry")
    assert [r[0] for r in keys] == ["JE-bad-2"]


async def test_a_backlog_is_posted_in_batches_of_500_each_journal_once(
    erp_js: JetStreamContext, erp_db: str, private_nats: NatsServer, tmp_path: Path
) -> None:
    # A remittance file leaves the poster a backlog: with batches of 100 it paid a fetch, a
    # transaction and a confirmed publish per 100 journals and trailed the mapper by half
    # the file (docs/decisions/031, addendum). The default batch takes 500 at a time.
    journals = [journal("bkl", i, amount_minor=500 + i) for i in range(1_200)]
    resent = [journal("bkl", i, amount_minor=500 + i, event_suffix="-resent") for i in (3, 777)]
    await publish_journals(erp_js, [*journals, *resent])
    process = poster_process(private_nats.url, erp_db, tmp_path / "poster-default.log")
    poster = process.start()
    try:
        await wait_ready(poster)

        async def all_confirmed() -> bool:
            return await subject_counts(erp_js, "erp.journal.confirmed.v1.>") >= 1_200

        await eventually(all_confirmed, 90, "1,200 confirmed journals")
        await eventually(lambda: consumer_idle(erp_js), 30, "every request acknowledged")
        entries = "SELECT count(*) FROM carebus_erp_poster.journal_entry"
        assert await scalar(erp_db, entries) == 1_200
        assert await scalar(erp_db, "SELECT count(*) FROM carebus_erp_poster.inbox") == 1_202
        assert await subject_counts(erp_js, "erp.journal.posted.v1.>") == 1_200
        status, body = http_get(f"{poster.base}/metrics")
        assert status == 200
        batches = re.search(
            rb'carebus_stage_batch_seconds_count\{stage="erp-poster"\} ([0-9.]+)', body
        )
        assert batches is not None, body[:2000]
        # 1,202 requests waiting: three batches (500, 500, 202), give or take a pull that
        # came back short while the backlog was being published.
        assert float(batches.group(1)) <= 5
    finally:
        process.kill()


async def test_two_batches_in_flight_sharing_journals_post_each_once_without_deadlock(
    erp_js: JetStreamContext, erp_db: str, private_nats: NatsServer, tmp_path: Path
) -> None:
    # Two batches in flight (the default parallel_batches) may hold the same journals, each
    # requested again by a mapper re-send, in opposite orders: each statement takes the
    # journals' locks in key order, so the batches wait for each other, never deadlock.
    journals = [journal("two", i, amount_minor=900 + i) for i in range(600)]
    again = [
        journal("two", i, amount_minor=900 + i, event_suffix="-again") for i in reversed(range(600))
    ]
    await publish_journals(erp_js, [*journals, *again])
    log = tmp_path / "poster-two.log"
    process = poster_process(private_nats.url, erp_db, log, batch_size=300)
    poster = process.start()
    try:
        await wait_ready(poster)

        async def all_handled() -> bool:
            inbox = "SELECT count(*) FROM carebus_erp_poster.inbox"
            return await scalar(erp_db, inbox) >= 1_200

        await eventually(all_handled, 90, "1,200 requests handled")
        await eventually(lambda: consumer_idle(erp_js), 30, "every request acknowledged")
        entries = "SELECT count(*) FROM carebus_erp_poster.journal_entry"
        assert await scalar(erp_db, entries) == 600
        assert await subject_counts(erp_js, "erp.journal.posted.v1.>") == 600
    finally:
        process.kill()
    assert "deadlock" not in log.read_text(errors="replace").lower()
