"""The business figures, computed in PostgreSQL from the tracker tables (and, for whether an
exception is still open, from the shared exception store: only it knows a resolution)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from carebus_contracts.subjects import UNKNOWN_SITE
from carebus_ops.adapters.charge_watch_store import UNCHARGED
from carebus_ops.domain.charge_watch import ChargeWait
from carebus_ops.domain.figures import Backlog, ExceptionCount, Figures, is_quarantine
from carebus_shared.exceptions.events import stage_of

# Each query: per site, the items past the threshold ($1 seconds) and the oldest item's time.
# ``OFFSET 0`` keeps each NOT EXISTS / EXISTS a per-row subplan (one index lookup per item):
# on tables a bulk file filled before PostgreSQL gathered statistics, the planner otherwise
# joined every charge against every posted journal (40 CPU-s per refresh during a
# 10,000-claim 835; docs/decisions/031, addendum).
# Per-site waits ($1 default, $2/$3 per site): the work items' own query (charge_watch_store).
_COMPLETED_WITHOUT_CHARGE = f"""
WITH uncharged AS ({UNCHARGED})
SELECT site, count(*) FILTER (WHERE due) AS n, min(occurred_at) AS oldest
  FROM uncharged
 GROUP BY site
"""
_CHARGES_UNPOSTED = """
SELECT c.site,
       count(DISTINCT c.entity_key)
           FILTER (WHERE c.recorded_at < now() - make_interval(secs => $1)) AS n,
       min(c.recorded_at) AS oldest
  FROM carebus_ops.step c
 WHERE c.kind = 'charge' AND c.stage = 'received' AND c.event_type = 'billing.charge.posted'
   AND NOT EXISTS (SELECT 1 FROM carebus_ops.journal_source j
                    WHERE j.source_event_id = c.event_id
                      AND EXISTS (SELECT 1 FROM carebus_ops.step p
                                   WHERE p.kind = 'journal' AND p.entity_key = j.journal_id
                                     AND p.stage IN ('posted', 'confirmed')
                                  OFFSET 0)
                   OFFSET 0)
 GROUP BY c.site
"""
_JOURNALS_UNCONFIRMED = """
SELECT r.site,
       count(*) FILTER (WHERE r.recorded_at < now() - make_interval(secs => $1)) AS n,
       min(r.recorded_at) AS oldest
  FROM carebus_ops.step r
 WHERE r.kind = 'journal' AND r.stage = 'mapped'
   AND NOT EXISTS (SELECT 1 FROM carebus_ops.step d
                    WHERE d.kind = 'journal' AND d.entity_key = r.entity_key
                      AND d.stage IN ('confirmed', 'rejected')
                   OFFSET 0)
 GROUP BY r.site
"""
# Parked events are counted once per failed reference (as the store keeps them).
_EXCEPTIONS = """
SELECT site, stage, category, reason, count(*) AS n,
       min(recorded_at) FILTER (WHERE status = 'open') AS oldest,
       count(*) FILTER (WHERE status = 'open') AS open
  FROM carebus_exceptions.exception_record
 GROUP BY site, stage, category, reason
"""
_REGISTERED_SITES = "SELECT DISTINCT site FROM carebus_ops.site_location WHERE active"


@dataclass(frozen=True, slots=True)
class Thresholds:
    charge_wait: ChargeWait
    charges_unposted_s: float
    journals_unconfirmed_s: float

    @property
    def completed_without_charge_s(self) -> float:
        return self.charge_wait.default_s


def _age(oldest: dt.datetime | None, now: dt.datetime) -> float:
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


async def registered_sites(conn: Any) -> frozenset[str]:
    return frozenset(str(row["site"]) for row in await conn.fetch(_REGISTERED_SITES))


async def figures(conn: Any, thresholds: Thresholds) -> Figures:
    now = dt.datetime.now(dt.UTC)
    out = Figures()
    wait = thresholds.charge_wait
    backlogs: tuple[tuple[str, tuple[object, ...], str], ...] = (
        (_COMPLETED_WITHOUT_CHARGE, (wait.default_s, *wait.arrays()), "completed"),
        (_CHARGES_UNPOSTED, (thresholds.charges_unposted_s,), "charges"),
        (_JOURNALS_UNCONFIRMED, (thresholds.journals_unconfirmed_s,), "journals"),
    )
    for query, params, which in backlogs:
        for row in await conn.fetch(query, *params):
            backlog = Backlog(int(row["n"]), _age(row["oldest"], now))
            site = out.site(row["site"])
            if which == "completed":
                site.completed_without_charge = backlog
            elif which == "charges":
                site.charges_unposted = backlog
            else:
                site.journals_unconfirmed = backlog
    for row in await conn.fetch(_EXCEPTIONS):
        stage = stage_of(row["stage"])
        common = {
            "site": row["site"],
            "stage": stage.value if stage else None,
            "category": row["category"],
            "reason_code": row["reason"],
        }
        out.all_exceptions.append(ExceptionCount(**common, count=int(row["n"])))
        if row["open"]:
            record = ExceptionCount(
                **common, count=int(row["open"]), oldest_age_s=_age(row["oldest"], now)
            )
            out.open_exceptions.append(record)
            site = out.site(row["site"] or UNKNOWN_SITE)
            site.exceptions_open += record.count
            if is_quarantine(record):
                site.quarantined += record.count
    return out
