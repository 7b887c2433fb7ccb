"""The business figures' backlog queries on a freshly filled tracker (issue #21).

A bulk file fills the tracker's tables faster than PostgreSQL gathers their statistics; with
none, the planner took ``kind = 'charge' AND stage = 'received'`` for one row and joined
every charge against every posted journal: the charges-unposted query ran 40 s of
PostgreSQL CPU during a 10,000-claim 835, once per refresh (docs/decisions/031, addendum).
Each backlog check is now one index lookup per item, whatever the statistics say.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from carebus_ops.adapters import figures_store, tracker_store
from carebus_ops.config import PACKAGE, SCHEMA
from carebus_ops.domain.charge_watch import ChargeWait
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.exceptions import store as exception_store
from tests.support.mapper import fresh_database

CHARGES = 3_000
_ENCODER = msgspec.json.Encoder()


@pytest.fixture
async def ops_db(database_url: str) -> AsyncIterator[str]:
    async with fresh_database(database_url) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, exception_store.OWNER, load_migrations("carebus_shared.exceptions"))
            await migrate(conn, SCHEMA, load_migrations(PACKAGE))
        finally:
            await conn.close()
        yield dsn


def _step(event_id: str, kind: str, key: str, stage: str, event_type: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "event_id": event_id, "kind": kind, "entity_key": key, "site": f"S{len(key) % 7}",
        "stage": stage, "event_type": event_type, "status": None, "entity_version": 1,
        "occurred_at": now, "recorded_at": now, "causation_id": None, "stream": "X",
        "stream_seq": 1, "subject": "x", "erp_document": None,
    }  # fmt: skip


async def _fill(conn: asyncpg.Connection, charges: int) -> None:
    """``charges`` charges, each with its journal requested, posted and confirmed; every
    third journal of another event is still unconfirmed."""
    steps: list[dict[str, Any]] = []
    sources: list[dict[str, str]] = []
    for i in range(charges):
        charge, journal = str(uuid.uuid4()), f"JE-{uuid.uuid4()}"
        steps.append(_step(charge, "charge", f"C{i}", "received", "billing.charge.posted"))
        for stage in ("mapped", "posted", "confirmed"):
            steps.append(_step(str(uuid.uuid4()), "journal", journal, stage, f"erp.{stage}"))
        sources.append({"journal_id": journal, "source_event_id": charge})
        other = f"JE-{uuid.uuid4()}"
        for stage in ("mapped", "posted", "confirmed")[: 1 if i % 3 == 0 else 3]:
            steps.append(_step(str(uuid.uuid4()), "journal", other, stage, f"erp.{stage}"))
    steps.append(_step("unposted", "charge", "C-unposted", "received", "billing.charge.posted"))
    for start in range(0, len(steps), 500):
        rows = _ENCODER.encode(steps[start : start + 500]).decode()
        await conn.execute(tracker_store._INSERT_STEPS, rows)
    for start in range(0, len(sources), 500):
        rows = _ENCODER.encode(sources[start : start + 500]).decode()
        await conn.execute(tracker_store._INSERT_SOURCES, rows)


async def test_backlog_figures_stay_linear_on_tables_without_statistics(ops_db: str) -> None:
    conn = await asyncpg.connect(ops_db)
    try:
        await _fill(conn, CHARGES)  # no ANALYZE: as right after a bulk file
        thresholds = figures_store.Thresholds(ChargeWait(86_400.0), 0.0, 0.0)
        started = time.monotonic()
        async with conn.transaction():
            # Linear, this takes tens of milliseconds; the quadratic plan took over 10 s here.
            await conn.execute("SET LOCAL statement_timeout = '5s'")
            figures = await figures_store.figures(conn, thresholds)
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    unposted = sum(site.charges_unposted.count for site in figures.sites.values())
    unconfirmed = sum(site.journals_unconfirmed.count for site in figures.sites.values())
    assert unposted == 1  # the one charge without a journal
    assert unconfirmed == len(range(0, CHARGES, 3))
    assert elapsed < 5
