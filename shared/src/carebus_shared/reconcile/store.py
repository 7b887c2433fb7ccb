"""Keeping the results (PostgreSQL, schema ``carebus_reconcile``, migrations beside this
module): one row per run, the figures per site and day, every difference. Written in one
transaction per run, rows as one JSON parameter per table (docs/decisions/009)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.reconcile.domain import SiteDay
from carebus_shared.reconcile.report import difference_json, figures_json

OWNER: Final = "carebus_reconcile"
PACKAGE: Final = "carebus_shared.reconcile"

_RUN = """
INSERT INTO carebus_reconcile.run
    (started_at, finished_at, first_day, last_day, site, unexplained, explained)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING run_id
"""
_SITE_DAYS = """
INSERT INTO carebus_reconcile.site_day (run_id, site, day, figures, unexplained, explained)
SELECT $1, r.site, r.day, r.figures, r.unexplained, r.explained
  FROM json_to_recordset($2::json) AS r(
       site text, day date, figures jsonb, unexplained integer, explained integer)
"""
_DIFFERENCES = """
INSERT INTO carebus_reconcile.difference
    (run_id, site, day, kind, entity, entity_id, journal_ids, documents, amount_minor,
     currency, exception_id, explanation)
SELECT $1, d.site, d.day, d.kind, d.entity, d.entity_id, d.journal_ids, d.documents,
       d.amount_minor, d.currency, d.exception_id, d.explanation
  FROM json_to_recordset($2::json) AS d(
       site text, day date, kind text, entity text, entity_id text, journal_ids text[],
       documents text[], amount_minor bigint, currency text, exception_id bigint,
       explanation text)
"""
_PRUNE = "DELETE FROM carebus_reconcile.run WHERE started_at < $1"
_ENCODE: Final = msgspec.json.Encoder().encode


async def migrate_store(conn: Any) -> list[str]:
    """Apply this schema's migrations (``carebus provision`` does it too)."""
    return await migrate(conn, OWNER, load_migrations(PACKAGE))


async def keep(
    conn: Any,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    days: Sequence[dt.date],
    site: str | None,
    results: Sequence[SiteDay],
) -> int:
    """Store one run's results; returns its run id."""
    site_days = [
        {
            "site": r.site,
            "day": r.day,
            "figures": figures_json(r),
            "unexplained": r.unexplained,
            "explained": r.explained,
        }
        for r in results
    ]
    differences = [
        {"site": r.site, "day": r.day, **difference_json(d)} for r in results for d in r.differences
    ]
    async with conn.transaction():
        run_id: int = await conn.fetchval(
            _RUN, started_at, finished_at, min(days), max(days), site,
            sum(r.unexplained for r in results), sum(r.explained for r in results),
        )  # fmt: skip
        if site_days:
            await conn.execute(_SITE_DAYS, run_id, _ENCODE(site_days).decode())
        if differences:
            await conn.execute(_DIFFERENCES, run_id, _ENCODE(differences).decode())
    return run_id


async def prune(conn: Any, before: dt.datetime) -> int:
    """Forget runs started before ``before``; how many."""
    status: str = await conn.execute(_PRUNE, before)
    return int(status.split()[-1])
