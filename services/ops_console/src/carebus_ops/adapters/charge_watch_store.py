"""Completed without charge in PostgreSQL: which completed appointments no charge names
(the tracker's tables), their work items, and the exception records those open and resolve.
The gauge and the work items read the same query, so they never disagree."""

from __future__ import annotations

from typing import Any

from carebus_ops.domain.charge_watch import ChargeWait, Overdue, record_for
from carebus_shared.exceptions import store as exception_store

# A charge names the appointment, or was posted for its visit (same patient, site, day).
_CHARGED = """
EXISTS (SELECT 1 FROM carebus_ops.link lk
         WHERE lk.kind = 'appointment' AND lk.entity_key = {appointment}
           AND lk.other_kind = 'charge')
OR EXISTS (SELECT 1 FROM carebus_ops.visit va
             JOIN carebus_ops.visit vc ON vc.visit_key = va.visit_key AND vc.kind = 'charge'
            WHERE va.kind = 'appointment' AND va.entity_key = {appointment})
"""
# Every completed appointment (as of its newest step) that no charge links to, with whether
# it is past its site's wait ($1 the default seconds, $2/$3 per-site overrides).
UNCHARGED = f"""
WITH latest AS (
    SELECT DISTINCT ON (entity_key) entity_key, site, status, occurred_at, recorded_at,
           event_id
      FROM carebus_ops.step
     WHERE kind = 'appointment' AND stage = 'received'
     ORDER BY entity_key, entity_version DESC, recorded_at DESC
), wait AS (
    SELECT * FROM unnest($2::text[], $3::float8[]) AS w(site, secs)
)
-- The wait runs from when carebus learned of the completion: a day sent late (a backfill,
-- a replay, a feed that was down) is not a day of missing charges.
SELECT l.entity_key, l.site, l.occurred_at, l.event_id,
       greatest(l.occurred_at, l.recorded_at)
           < now() - make_interval(secs => coalesce(w.secs, $1)) AS due
  FROM latest l LEFT JOIN wait w ON w.site = l.site
 WHERE l.status = 'completed'
   AND NOT ({_CHARGED.format(appointment="l.entity_key")})
"""
_OPEN_ITEMS = f"""
WITH uncharged AS ({UNCHARGED})
INSERT INTO carebus_ops.charge_watch (appointment_id, site, completed_at, completion_event_id)
SELECT entity_key, site, occurred_at, event_id FROM uncharged u
 WHERE due AND NOT EXISTS (SELECT 1 FROM carebus_ops.charge_watch c
                            WHERE c.appointment_id = u.entity_key)
RETURNING appointment_id, site, completion_event_id
"""
# Open items whose appointment a charge now names, or that is no longer completed.
_SETTLED = f"""
WITH latest AS (
    SELECT DISTINCT ON (s.entity_key) s.entity_key, s.status
      FROM carebus_ops.step s
      JOIN carebus_ops.charge_watch c ON c.appointment_id = s.entity_key
     WHERE s.kind = 'appointment' AND s.stage = 'received' AND c.resolved_at IS NULL
     ORDER BY s.entity_key, s.entity_version DESC, s.recorded_at DESC
)
UPDATE carebus_ops.charge_watch c
   SET resolved_at = now(),
       resolution = CASE WHEN l.status = 'completed' THEN 'charge_arrived'
                         ELSE 'no_longer_completed' END
  FROM latest l
 WHERE c.appointment_id = l.entity_key AND c.resolved_at IS NULL
   AND (l.status <> 'completed'
        OR {_CHARGED.format(appointment="c.appointment_id")})
RETURNING c.appointment_id, c.record_id, c.resolution
"""


def _params(wait: ChargeWait) -> tuple[float, list[str], list[float]]:
    return (wait.default_s, *wait.arrays())


async def open_items(conn: Any, wait: ChargeWait) -> int:
    """Open a work item and an exception record per newly overdue appointment; how many."""
    rows = await conn.fetch(_OPEN_ITEMS, *_params(wait))
    overdue = [Overdue(r["appointment_id"], r["site"], r["completion_event_id"]) for r in rows]
    ids = await exception_store.record_all(conn, [record_for(o, wait) for o in overdue])
    for item, record_id in zip(overdue, ids, strict=True):
        if record_id is None:  # recorded before (its item was lost with a restored table)
            found = await conn.fetchval(
                "SELECT id FROM carebus_exceptions.exception_record WHERE dedupe_key = $1",
                record_for(item, wait).dedupe_key,
            )
            record_id = None if found is None else int(found)
        await conn.execute(
            "UPDATE carebus_ops.charge_watch SET record_id = $2 WHERE appointment_id = $1",
            item.appointment_id,
            record_id,
        )
    return len(overdue)


async def resolve_items(conn: Any, actor: str) -> int:
    """Resolve the items (and their records) a charge or a status change settled; how many."""
    rows = await conn.fetch(_SETTLED)
    for row in rows:
        if row["record_id"] is not None:
            await exception_store.resolve(
                conn, int(row["record_id"]), "resolved", actor, str(row["resolution"])
            )
    return len(rows)
