"""`make bench`: the ERP poster.

1. Journals/s into the PostgreSQL ledger with batching (the real ``PostJournals`` handler:
   typed decode, inbox lookup, one multi-row INSERT for the entries, one COPY for their lines,
   multi-row inbox and state writes, one transaction per fetched batch of 200) next to one
   INSERT per row and one transaction per journal (the same work, written the naive way),
   same run, same database, alternating rounds; medians and the ratio are reported.
   Both take the requests from a real JetStream stream, fetched before the clock starts.
2. The issue's outage: the ERP sandbox is down for 60 s while 1,000 journals flow through the
   poster process (http connector); afterwards every journal must be posted exactly once.
   Reports the catch-up time, requests spent on the down ERP and redeliveries.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from prometheus_client import CollectorRegistry

from benchmarks.bench_report import report
from carebus_erp_poster.adapters.connectors.ledger import LedgerConnector
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.domain.journals import Posting
from carebus_erp_poster.handlers.common import Parts
from carebus_erp_poster.handlers.post_journals import PostJournals, parse
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.stage import Forward
from carebus_shared.jetstream.topology import ERP_POSTER
from tests.support.erp_poster import (
    Sandbox,
    consumer_idle,
    drop_database,
    eventually,
    fresh_database,
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

JOURNALS = 4_000
BATCH = 200
ROUNDS = 3
OUTAGE_S = 60.0
OUTAGE_JOURNALS = 1_000

_ENTRY = """
INSERT INTO carebus_erp_poster.journal_entry (idempotency_key, journal_id, company, site,
    posting_date, description, source_event_id, correlation_id)
VALUES ($1, $1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING
RETURNING entry_id
"""
_LINE = """
INSERT INTO carebus_erp_poster.journal_line (entry_id, line_number, account, side,
    amount_minor, currency, cost_centre, department, location, payer_class, provider, memo)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""
_INBOX = """
INSERT INTO carebus_erp_poster.inbox (consumer, event_id, journal_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""
_STATUS = """
INSERT INTO carebus_erp_poster.journal_status (journal_id, connector, status, event_id, site,
    correlation_id, entity_version, stream_seq, subject, erp_request_id, posted_at,
    confirmed_at, document_number, fiscal_period)
VALUES ($1, 'ledger', 'confirmed', $2, $3, $4, $5, $6, $7, $8, now(), now(), $8, $9)
"""


async def _fetch_all(js: JetStreamContext, durable: str, n: int) -> list[Msg]:
    await js.add_consumer(
        "ERP",
        api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.NONE,
            filter_subject=f"erp.journal.requested.v1.{durable}.>",
        ),
    )
    sub = await js.pull_subscribe_bind(durable, stream="ERP")
    msgs: list[Msg] = []
    while len(msgs) < n:
        msgs += await sub.fetch(min(500, n - len(msgs)), timeout=10)
    return msgs


async def _requests(js: JetStreamContext, tag: str, n: int) -> list[Msg]:
    batch = [journal(tag, i) for i in range(n)]
    # A site per round, so that each round has its own subject (and consumer) to read.
    batch = [j.__class__(**{**_fields(j), "site": tag}) for j in batch]
    await publish_journals(js, batch)
    return await _fetch_all(js, tag, n)


def _fields(j: Any) -> dict[str, Any]:
    return {f: getattr(j, f) for f in j.__struct_fields__}


async def _batched(pool: asyncpg.Pool, msgs: list[Msg]) -> tuple[float, float]:
    """(journals/s, this process's CPU µs per journal: the handler's own cost, without the
    PostgreSQL server's)."""

    async def no_publish(_: Any) -> None:
        return None

    parts = Parts(
        lambda: pool,
        LedgerConnector(lambda: pool),
        PosterMetrics(CollectorRegistry()),
        no_publish,
        consumer=ERP_POSTER,
        recheck_after_s=2.0,
    )
    poster = PostJournals(parts, max_deliveries=10)
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(msgs), BATCH):
        outcomes = await poster.handle(msgs[start : start + BATCH])
        assert all(isinstance(o, Forward) for o in outcomes)
    cpu_us = (time.process_time() - cpu) / len(msgs) * 1e6
    return len(msgs) / (time.perf_counter() - started), cpu_us


async def _one_by_one(pool: asyncpg.Pool, msgs: list[Msg]) -> float:
    started = time.perf_counter()
    async with pool.acquire() as conn:
        for msg in msgs:
            posting = parse(msg)
            assert isinstance(posting, Posting)
            r = posting.request
            async with conn.transaction():
                entry_id = await conn.fetchval(
                    _ENTRY, r.journal_id, r.company, r.site, r.posting_date, r.description,
                    r.event_id, r.correlation_id,
                )  # fmt: skip
                for line in r.lines:
                    d = line.dimensions
                    await conn.execute(
                        _LINE, entry_id, line.line_number, line.account, str(line.side),
                        line.amount.amount_minor, line.amount.currency, d.cost_centre,
                        d.department, d.location, d.payer_class and str(d.payer_class),
                        d.provider, line.memo,
                    )  # fmt: skip
                await conn.execute(_INBOX, ERP_POSTER, r.event_id, r.journal_id)
                await conn.execute(
                    _STATUS, r.journal_id, r.event_id, r.site, r.correlation_id,
                    r.entity_version, posting.stream_seq, posting.subject,
                    f"GL-{entry_id:010d}", r.posting_date.strftime("%Y-%m"),
                )  # fmt: skip
    return len(msgs) / (time.perf_counter() - started)


async def test_ledger_journals_per_second_batched_vs_one_insert_per_journal(
    database_url: str, private_nats: NatsServer
) -> None:
    await provision_short(private_nats.url)
    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    async for dsn in private_database(database_url):
        await migrated(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        batched: list[tuple[float, float]] = []
        single: list[float] = []
        try:
            for n in range(ROUNDS):
                batched.append(await _batched(pool, await _requests(js, f"B{n}", JOURNALS)))
                single.append(await _one_by_one(pool, await _requests(js, f"S{n}", JOURNALS)))
        finally:
            await pool.close()
        total = 2 * ROUNDS * JOURNALS
        [(entries, lines, balance)] = await query(
            dsn,
            "SELECT (SELECT count(*) FROM carebus_erp_poster.journal_entry), "
            "(SELECT count(*) FROM carebus_erp_poster.journal_line), "
            "(SELECT sum(balance_minor) FROM carebus_erp_poster.trial_balance_by_account)",
        )
        assert (entries, lines, balance) == (total, 2 * total, 0)
    await nc.close()
    best, naive = statistics.median(rate for rate, _ in batched), statistics.median(single)
    report(
        "erp_poster",
        {
            "journals_per_round": JOURNALS,
            "batch_size": BATCH,
            "rounds": ROUNDS,
            "ledger_batched_journals_per_s": best,
            "ledger_one_insert_per_journal_journals_per_s": naive,
            "ratio_batched_over_one_by_one": round(best / naive, 2),
            "ledger_batched_client_cpu_us_per_journal": statistics.median(c for _, c in batched),
            "batched_rounds": [round(rate) for rate, _ in batched],
            "one_by_one_rounds": [round(x) for x in single],
        },
    )
    assert best > naive


async def test_erp_down_for_60_s_while_1000_journals_flow_every_journal_posted_once(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> None:
    await provision_short(private_nats.url, backoff_s=(30.0, 60.0, 120.0))
    db = await fresh_database(database_url)
    await migrated(db)
    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    sandbox = Sandbox(db, tmp_path / "sandbox.log", rate_limit=200, confirm_delay_s=1.0)
    poster = poster_process(
        private_nats.url, db, tmp_path / "poster.log", connector="http",
        erp_base_url=sandbox.url, ack_keepalive_s=5, confirm_poll_s=1.0,
    )  # fmt: skip

    async def accepted() -> int:
        return int(await scalar(db, "SELECT count(*) FROM carebus_erp_sandbox.journal"))

    async def all_confirmed() -> bool:
        confirmed = await scalar(
            db, "SELECT count(*) FROM carebus_erp_poster.journal_status WHERE status = 'confirmed'"
        )
        return int(confirmed) == OUTAGE_JOURNALS

    try:
        await sandbox.start()
        poster.start()
        await wait_ready(poster)
        journals = [journal("soak", i) for i in range(OUTAGE_JOURNALS)]
        await publish_journals(js, journals[:100])
        await eventually(lambda: _at_least(accepted, 50), 60, "posting under way")
        began = time.time()
        await sandbox.control("POST", "/sandbox/outage", duration_s=OUTAGE_S)
        rest, steps = journals[100:], 30
        for n in range(steps):  # 900 journals arrive while the ERP is down
            await publish_journals(js, rest[n::steps])
            await asyncio.sleep(OUTAGE_S / steps)
        ended = began + OUTAGE_S
        await eventually(all_confirmed, 300, "every journal confirmed", 0.5)
        caught_up_s = time.time() - ended
        await eventually(lambda: consumer_idle(js), 60, "every request acknowledged")
        log = await sandbox.requests(since=began)
        [(erp_journals, distinct, replays)] = await query(
            db,
            "SELECT count(*), count(DISTINCT journal_id), coalesce(sum(replays), 0) "
            "FROM carebus_erp_sandbox.journal",
        )
        posted = await subject_counts(js, "erp.journal.posted.v1.*")
        confirmed = await subject_counts(js, "erp.journal.confirmed.v1.*")
        exceptions = await scalar(db, "SELECT count(*) FROM carebus_exceptions.exception_record")
        handed_back, duplicates = _counter(poster, "retried"), _counter(poster, "duplicate")
    finally:
        poster.kill()
        sandbox.stop()
        await nc.close()
        await drop_database(database_url, db)
    assert (erp_journals, distinct) == (OUTAGE_JOURNALS, OUTAGE_JOURNALS)
    assert (posted, confirmed, exceptions) == (OUTAGE_JOURNALS, OUTAGE_JOURNALS, 0)
    report(
        "erp_poster_outage",
        {
            "journals": OUTAGE_JOURNALS,
            "outage_s": OUTAGE_S,
            "posted_once_in_erp": distinct,
            "journal_posted_events": posted,
            "journal_confirmed_events": confirmed,
            "idempotent_replays_at_erp": replays,
            "requests_refused_during_outage": sum(1 for r in log if r["reason"] == "outage"),
            "catch_up_after_outage_s": round(caught_up_s, 1),
            "deliveries_handed_back_to_jetstream": handed_back,
            "redeliveries_found_in_inbox": duplicates,
            "exception_records": exceptions,
        },
    )


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n


def _counter(poster: ServiceProcess, outcome: str) -> float:
    _, body = http_get(f"{poster.base}/metrics")
    pattern = rf'^carebus_erp_poster_journals_total{{connector="http",outcome="{outcome}"}} (\S+)$'
    match = re.search(pattern, body.decode(), re.M)
    return float(match.group(1)) if match else 0.0
