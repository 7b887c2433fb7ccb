"""The poster with the "http" connector against the ERP sandbox: outage, 429 storm,
rejections and re-drive, exhausted deliveries — real NATS, PostgreSQL and processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import decode_as
from carebus_contracts.erp import JournalRejected
from carebus_shared.cli.exceptions import redrive
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.erp_poster import (
    Sandbox,
    consumer_idle,
    eventually,
    journal,
    migrated,
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

# make test runs a short outage; the benchmark runs the 60 s with 1,000 journals.
OUTAGE_S = 4.0
OUTAGE_JOURNALS = 150


@pytest.fixture
async def erp_db(database_url: str) -> AsyncIterator[str]:
    async for dsn in private_database(database_url):
        await migrated(dsn)
        yield dsn


@dataclass
class Stack:
    js: JetStreamContext
    sandbox: Sandbox
    poster: ServiceProcess
    db: str
    nats_url: str

    def metric(self, name: str) -> float:
        status, body = http_get(f"{self.poster.base}/metrics")
        assert status == 200
        match = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
        assert match, f"{name} not exported"
        return float(match.group(1))


@asynccontextmanager
async def running(
    nats_server: NatsServer,
    db: str,
    logs: Path,
    sandbox_settings: dict[str, Any],
    poster_settings: dict[str, Any],
) -> AsyncIterator[Stack]:
    await provision_short(nats_server.url, backoff_s=(5.0, 5.0, 10.0))
    nc = await nats.connect(nats_server.url)
    sandbox = Sandbox(db, logs / "sandbox.log", **sandbox_settings)
    poster = poster_process(
        nats_server.url, db, logs / "poster.log", connector="http",
        **{"erp_base_url": sandbox.url, **poster_settings},
    )  # fmt: skip
    try:
        await sandbox.start()
        poster.start()
        await wait_ready(poster)
        yield Stack(nc.jetstream(), sandbox, poster, db, nats_server.url)
    finally:
        poster.kill()
        sandbox.stop()
        await nc.close()


async def _sandbox_journals(db: str) -> tuple[int, int]:
    [(journals, distinct)] = await query(
        db, "SELECT count(*), count(DISTINCT journal_id) FROM carebus_erp_sandbox.journal"
    )
    return int(journals), int(distinct)


async def _confirmed(db: str) -> int:
    return int(
        await scalar(
            db, "SELECT count(*) FROM carebus_erp_poster.journal_status WHERE status = 'confirmed'"
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize(("outage_s", "journals"), [(OUTAGE_S, OUTAGE_JOURNALS)])
async def test_an_erp_outage_while_journals_flow_posts_each_exactly_once_afterwards(
    outage_s: float, journals: int, private_nats: NatsServer, erp_db: str, tmp_path: Path
) -> None:
    async with running(
        private_nats, erp_db, tmp_path,
        {"rate_limit": 500, "confirm_delay_s": 0.5},
        {"breaker_open_s": 1.0, "batch_size": 50},
    ) as stack:  # fmt: skip
        first = [journal("outage", i) for i in range(journals // 3)]
        rest = [journal("outage", i) for i in range(journals // 3, journals)]
        await publish_journals(stack.js, first)
        await eventually(
            lambda: _has(stack.db, len(first) // 2), 30, "the first journals to reach the ERP"
        )
        started = time.time()
        await stack.sandbox.control("POST", "/sandbox/outage", duration_s=outage_s)
        # Journals keep flowing while the ERP is down.
        chunks = 5
        for n in range(chunks):
            await publish_journals(stack.js, rest[n::chunks])
            await asyncio.sleep(outage_s / chunks)

        async def all_confirmed() -> bool:
            return await _confirmed(stack.db) == journals

        await eventually(all_confirmed, 60 + outage_s, "every journal confirmed")
        await eventually(lambda: consumer_idle(stack.js), 30, "every request acknowledged")

        assert await _sandbox_journals(stack.db) == (journals, journals)
        assert await subject_counts(stack.js, "erp.journal.posted.v1.>") == journals
        assert await subject_counts(stack.js, "erp.journal.confirmed.v1.>") == journals
        assert (
            await scalar(stack.db, "SELECT count(*) FROM carebus_exceptions.exception_record") == 0
        )
        log = await stack.sandbox.requests(since=started)
        refused = [r for r in log if r["reason"] == "outage"]
        assert refused, "the poster must have met the outage"
        # The circuit breaker paused posting: a few probes per second, not a request per
        # journal per retry (hundreds of journals were waiting).
        assert len(refused) <= 20 + 3 * outage_s
        assert stack.metric("carebus_erp_poster_circuit_opened_total") >= 1
        assert stack.metric("carebus_erp_poster_circuit_state") == 0
        assert stack.metric("carebus_erp_poster_pending_journals") == 0


async def _has(db: str, n: int) -> bool:
    return (await _sandbox_journals(db))[0] >= n


@pytest.mark.slow
async def test_a_429_storm_is_respected_and_the_advertised_rate_never_exceeded(
    private_nats: NatsServer, erp_db: str, tmp_path: Path
) -> None:
    limit, count = 10, 30
    async with running(
        private_nats, erp_db, tmp_path,
        {"rate_limit": limit, "rate_window_s": 1.0, "confirm_delay_s": 0.2},
        {"erp_rate_limit_per_s": 1000, "batch_size": 25},
    ) as stack:  # fmt: skip
        started = time.time()
        await publish_journals(stack.js, [journal("storm", i) for i in range(count)])
        await eventually(lambda: _has(stack.db, 10), 20, "posting under way")
        await stack.sandbox.control("POST", "/sandbox/storm", duration_s=2.5, retry_after_s=1.0)

        async def all_confirmed() -> bool:
            return await _confirmed(stack.db) == count

        await eventually(all_confirmed, 60, "every journal confirmed")
        log = await stack.sandbox.requests(since=started)

    arrivals = sorted(r["at"] for r in log)
    busiest = max(
        sum(1 for t in arrivals[i:] if t < start + 1.0) for i, start in enumerate(arrivals)
    )
    assert busiest <= limit, f"{busiest} requests arrived within one second (limit {limit})"
    assert not [r for r in log if r["reason"] == "throttled"], "the sandbox had to throttle"
    storm = [r["at"] for r in log if r["reason"] == "storm"]
    assert storm, "the storm must have been met"
    for answered in storm:
        # Requests already on the wire when the 429 came back are allowed 150 ms; after
        # that nothing may arrive before the Retry-After (1 s) has passed.
        early = [t for t in arrivals if answered + 0.15 < t < answered + 1.0 - 0.05]
        assert not early, f"{len(early)} requests ignored a Retry-After"
    assert len(storm) <= 2.5 / 1.0 + 3  # about one try per Retry-After, not a hammering
    assert await _sandbox_journals(erp_db) == (count, count)


@pytest.mark.slow
async def test_rejections_go_to_the_exception_store_and_a_redrive_after_the_fix_posts_once(
    private_nats: NatsServer, erp_db: str, tmp_path: Path
) -> None:
    async with running(
        private_nats, erp_db, tmp_path,
        {"rate_limit": 100, "confirm_delay_s": 1.5, "closed_periods": "2024-12"},
        {},
    ) as stack:  # fmt: skip
        unknown = journal("rej", 1, accounts=("1200", "4711"))  # 422 at once
        closed = journal("rej", 2, posting_date=dt.date(2024, 12, 31))  # rejected later
        fine = journal("rej", 3)
        await publish_journals(stack.js, [unknown, closed, fine])

        async def pending_shown() -> bool:
            # Both accepted journals await the ERP's decision (1.5 s): the gauges show it.
            return (
                stack.metric("carebus_erp_poster_pending_journals") == 2
                and stack.metric("carebus_erp_poster_oldest_pending_age_seconds") > 0
            )

        await eventually(pending_shown, 20, "two pending journals in the metrics", 0.05)

        async def two_records() -> bool:
            n = await scalar(stack.db, "SELECT count(*) FROM carebus_exceptions.exception_record")
            return bool(n == 2)

        await eventually(two_records, 30, "both rejections recorded")
        records = {
            r["event_id"]: r
            for r in await query(
                stack.db,
                "SELECT id, event_id, category, reason, message, path, offending_value, raw "
                "FROM carebus_exceptions.exception_record",
            )
        }
        sync, later = records[unknown.event_id], records[closed.event_id]
        assert (sync["category"], sync["reason"]) == ("erp_rejection", "erp_unknown_account")
        assert (sync["path"], sync["offending_value"]) == ("$.lines[1].account", "4711")
        assert "HTTP 422" in sync["message"]
        assert "4711" in sync["message"]
        assert (later["category"], later["reason"]) == ("erp_rejection", "erp_period_closed")
        assert "posting period 2024-12 is closed" in later["message"]
        assert later["raw"]  # the original request, ready for a re-drive
        await eventually(lambda: _rejected_events(stack.js, 2), 20, "two journal.rejected events")

        # The fixes: open the account, reopen the period. Then re-drive both.
        await stack.sandbox.control("POST", "/sandbox/accounts", codes=["4711"])
        await stack.sandbox.control("PATCH", "/sandbox/settings", closed_periods=[])
        for record in (sync, later):
            await redrive(stack.nats_url, stack.db, record["id"])

        async def all_confirmed() -> bool:
            return await _confirmed(stack.db) == 3

        await eventually(all_confirmed, 30, "all three journals confirmed")
        rows = await query(
            stack.db,
            "SELECT journal_id, idempotency_key, status FROM carebus_erp_sandbox.journal "
            "ORDER BY idempotency_key",
        )
        # Posted once each; the re-driven attempts under a new key (nothing was booked before).
        assert [tuple(r) for r in rows] == [
            ("JE-rej-1", "JE-rej-1~1", "confirmed"),
            ("JE-rej-2", "JE-rej-2", "rejected"),
            ("JE-rej-2", "JE-rej-2~1", "confirmed"),
            ("JE-rej-3", "JE-rej-3", "confirmed"),
        ]
        assert await subject_counts(stack.js, "erp.journal.confirmed.v1.>") == 3
        assert stack.metric("carebus_erp_poster_pending_journals") == 0


async def _rejected_events(js: JetStreamContext, n: int) -> bool:
    if await subject_counts(js, "erp.journal.rejected.v1.>") < n:
        return False
    sub = await js.pull_subscribe("erp.journal.rejected.v1.>", stream="ERP")
    msgs = await sub.fetch(n, timeout=5)
    events = [decode_as(JournalRejected, m.data) for m in msgs]
    await sub.unsubscribe()
    return {e.error_code for e in events} == {"unknown_account", "PERIOD-CLOSED"}


@pytest.mark.slow
async def test_when_deliveries_run_out_the_journal_goes_to_the_exception_store_with_the_erp_answer(
    private_nats: NatsServer, erp_db: str, tmp_path: Path
) -> None:
    async with running(
        private_nats, erp_db, tmp_path,
        {"rate_limit": 100, "outages": "0-600"},
        {"max_deliveries": 2, "erp_hold_s": 1.0, "breaker_open_s": 0.5},
    ) as stack:  # fmt: skip
        await publish_journals(stack.js, [journal("gone", 1)])

        async def recorded() -> bool:
            return bool(
                await scalar(stack.db, "SELECT count(*) FROM carebus_exceptions.exception_record")
            )

        await eventually(recorded, 30, "the exhausted journal recorded")
        [row] = await query(
            stack.db,
            "SELECT category, reason, message, event_id FROM carebus_exceptions.exception_record",
        )
        assert (row["category"], row["reason"]) == ("erp_rejection", "deliveries_exhausted")
        assert "in 2 deliveries" in row["message"]
        assert "HTTP 503" in row["message"] or "circuit open" in row["message"]
        assert row["event_id"] == "evt-gone-1"
        await eventually(lambda: consumer_idle(stack.js), 10, "the journal terminated")
