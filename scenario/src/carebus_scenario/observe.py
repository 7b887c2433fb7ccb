"""What the suite actually holds: the ledger, the exception store, the quarantine, JetStream.

Read through the public surfaces: the ERP poster's ledger tables (schema carebus_erp_poster),
the shared exception store (schema carebus_exceptions), the validator's quarantine API and
JetStream consumer and stream state. ``since`` limits ledger and exception figures to what
was written after a moment (a demo played into a suite that already holds other days).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx
import nats
from nats.js.errors import NotFoundError

from carebus_scenario.oracle import Balance, ExceptionKey, LedgerKey, stage_name
from carebus_shared.auth.client import bearer, cli_key
from carebus_shared.jetstream.connection import server_list
from carebus_shared.jetstream.topology import TOPOLOGY

# (stream, durable, stage): an ordered stage's partitions count as the stage (ADR 030).
PIPELINE_CONSUMERS = tuple((c.stream, c.durable, c.stage) for c in TOPOLOGY.pipeline_consumers)

_LEDGER = """
SELECT e.site, l.account, l.currency,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'debit'), 0)::bigint AS debit,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'credit'), 0)::bigint AS credit
  FROM carebus_erp_poster.journal_line l
  JOIN carebus_erp_poster.journal_entry e USING (entry_id)
 WHERE e.posted_at >= $1
 GROUP BY e.site, l.account, l.currency
"""
_ENTRIES = """
SELECT site, count(*) AS entries, count(DISTINCT journal_id) AS journals,
       count(DISTINCT source_event_id) AS sources
  FROM carebus_erp_poster.journal_entry WHERE posted_at >= $1 GROUP BY site
"""
_UNBALANCED = """
SELECT count(*) FROM (
  SELECT l.entry_id FROM carebus_erp_poster.journal_line l
    JOIN carebus_erp_poster.journal_entry e USING (entry_id)
   WHERE e.posted_at >= $1
   GROUP BY l.entry_id, l.currency
  HAVING sum(CASE l.side WHEN 'debit' THEN l.amount_minor ELSE -l.amount_minor END) <> 0
) unbalanced
"""
# The pipeline's records only: the ops console's completed-without-charge work items
# (revenue_integrity; the demo checks them against the oracle on their own, charge_watch.py)
# and the dead letters of consumers off the pipeline (the outbound feeds; the outbound check
# counts their deliveries) are no failed input the oracle's pipeline model counts.
_EXCEPTIONS = """
SELECT stage, category, reason, coalesce(site, '-') AS site, count(*) AS n
  FROM carebus_exceptions.exception_record
 WHERE recorded_at >= $1 AND category <> 'revenue_integrity'
   AND replace(stage, '-', '_') <> ALL($2::text[])
 GROUP BY stage, category, reason, coalesce(site, '-')
"""
OFF_PIPELINE_STAGES = sorted(
    {
        stage_name(name)
        for c in TOPOLOGY.consumers
        if not c.pipeline
        for name in (c.durable, c.stage)
    }
)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class Observation:
    ledger: dict[LedgerKey, Balance] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)  # journal entries per site
    journals: Counter[str] = field(default_factory=Counter)  # distinct journal ids per site
    sources: Counter[str] = field(default_factory=Counter)  # distinct source events per site
    unbalanced_entries: int = 0
    exceptions: Counter[ExceptionKey] = field(default_factory=Counter)
    exceptions_by_site: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantine: Counter[str] = field(default_factory=Counter)
    stream_messages: dict[str, int] = field(default_factory=dict)

    @property
    def entry_count(self) -> int:
        return sum(self.entries.values())


async def read_ledger(conn: asyncpg.Connection, since: dt.datetime = EPOCH) -> Observation:
    obs = Observation()
    for row in await conn.fetch(_LEDGER, since):
        obs.ledger[(row["site"], row["account"], row["currency"])] = Balance(
            int(row["debit"]), int(row["credit"])
        )
    for row in await conn.fetch(_ENTRIES, since):
        obs.entries[row["site"]] = int(row["entries"])
        obs.journals[row["site"]] = int(row["journals"])
        obs.sources[row["site"]] = int(row["sources"])
    obs.unbalanced_entries = int(await conn.fetchval(_UNBALANCED, since))
    return obs


async def read_exceptions(conn: asyncpg.Connection, obs: Observation, since: dt.datetime) -> None:
    """The pipeline's exception records written since ``since``, by stage, category and
    reason and by site, into ``obs``."""
    for row in await conn.fetch(_EXCEPTIONS, since, OFF_PIPELINE_STAGES):
        stage = stage_name(str(row["stage"]))
        obs.exceptions[(stage, row["category"], row["reason"])] += int(row["n"])
        obs.exceptions_by_site[(row["site"], row["reason"])] += int(row["n"])


async def observe(
    database_url: str, validator_http: str, nats_url: str, since: dt.datetime = EPOCH
) -> Observation:
    conn = await asyncpg.connect(database_url)
    try:
        obs = await read_ledger(conn, since)
        await read_exceptions(conn, obs, since)
    finally:
        await conn.close()
    obs.quarantine = await quarantine_reasons(validator_http, since)
    obs.stream_messages = await stream_messages(nats_url)
    return obs


async def quarantine_reasons(validator_http: str, since: dt.datetime = EPOCH) -> Counter[str]:
    """Parked events by their first failure reason (``queued_behind`` when none)."""
    found: Counter[str] = Counter()
    headers = bearer(cli_key())
    async with httpx.AsyncClient(base_url=validator_http, timeout=30.0, headers=headers) as client:
        cursor: int | None = None
        for _ in range(10_000):  # pages of 1,000: bounded
            params: dict[str, str | int] = {"limit": 1000}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get("/v1/quarantine", params=params)).json()
            for item in page["items"]:
                if dt.datetime.fromisoformat(item["parked_at"]) < since:
                    continue
                failures = item["failures"]
                found[failures[0]["reason"] if failures else "queued_behind"] += 1
            cursor = page.get("next_cursor")
            if cursor is None:
                break
    return found


async def stream_messages(nats_url: str) -> dict[str, int]:
    nc = await nats.connect(server_list(nats_url))
    try:
        js = nc.jetstream()
        counts = {}
        for spec in TOPOLOGY.streams:
            try:
                counts[spec.name] = (await js.stream_info(spec.name)).state.messages
            except NotFoundError:
                counts[spec.name] = 0
        return counts
    finally:
        await nc.close()


async def backlog(nats_url: str) -> dict[str, int]:
    """Pending plus unacknowledged messages per pipeline stage (over its partitions)."""
    nc = await nats.connect(server_list(nats_url))
    try:
        js = nc.jetstream()
        found: dict[str, int] = {}
        for stream, durable, stage in PIPELINE_CONSUMERS:
            info = await js.consumer_info(stream, durable)
            waiting = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            found[stage] = found.get(stage, 0) + waiting
        return found
    finally:
        await nc.close()


async def wait_quiet(
    endpoints_nats: str,
    database_url: str,
    *,
    timeout_s: float = 120.0,
    settle_s: float = 1.5,
    since: dt.datetime = EPOCH,
) -> float:
    """Wait until no consumer has pending or unacknowledged messages and the ledger has not
    grown for ``settle_s``; returns the seconds waited. Raises TimeoutError with the backlog."""
    started = time.monotonic()
    deadline = started + timeout_s
    conn = await asyncpg.connect(database_url)
    try:
        stable_since: float | None = None
        last_count = -1
        pending: dict[str, int] = {}
        while time.monotonic() < deadline:
            pending = await backlog(endpoints_nats)
            if any(pending.values()):
                # The ledger is counted only once the streams are drained: counting it on
                # every poll scanned journal_entry 4×/s, PostgreSQL CPU taken from the run
                # it measures (~7 CPU-s in a 10,000-claim 835; docs/decisions/031).
                stable_since, last_count = None, -1
                await asyncio.sleep(0.25)
                continue
            count = int(
                await conn.fetchval(
                    "SELECT count(*) FROM carebus_erp_poster.journal_entry WHERE posted_at >= $1",
                    since,
                )
            )
            now = time.monotonic()
            if count != last_count:
                stable_since = None
            elif stable_since is None:
                stable_since = now
            elif now - stable_since >= settle_s:
                return now - started
            last_count = count
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    raise TimeoutError(f"the pipeline did not go quiet within {timeout_s:.0f}s: {pending}")
