"""Writing the tracker's tables: one statement per table for a whole batch, the rows as one
JSON parameter (``json_to_recordset``, docs/decisions/009), each row once
(``ON CONFLICT DO NOTHING`` on the event id), so a redelivered or replayed batch
adds nothing; and emptying them for a rebuild."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from carebus_ops.domain.projection import Link, Projection, SiteLocation, VisitKey


def _insert(table: str, columns: Sequence[str], types: Sequence[str], conflict: str) -> str:
    record = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    return (
        f"INSERT INTO carebus_ops.{table} ({', '.join(columns)}) "
        f"SELECT {', '.join(columns)} FROM json_to_recordset($1::json) AS r({record}) {conflict}"
    )


_STEP_TYPES = {
    "event_id": "text", "kind": "text", "entity_key": "text", "site": "text",
    "stage": "text", "event_type": "text", "status": "text", "entity_version": "bigint",
    "occurred_at": "timestamptz", "recorded_at": "timestamptz", "causation_id": "text",
    "stream": "text", "stream_seq": "bigint", "subject": "text", "erp_document": "text",
}  # fmt: skip
_EXCEPTION_TYPES = {
    "event_id": "text", "failed_event_id": "text", "site": "text", "stage": "text",
    "reason": "text", "reason_code": "text", "recorded_at": "timestamptz", "stream": "text",
    "stream_seq": "bigint", "subject": "text",
}  # fmt: skip
_LINK_TYPES = {"kind": "text", "entity_key": "text", "other_kind": "text", "other_key": "text"}
_SITE_TYPES = {
    "location_id": "text", "site": "text", "active": "boolean", "entity_version": "bigint"
}  # fmt: skip

_INSERT_STEPS = _insert(
    "step", list(_STEP_TYPES), list(_STEP_TYPES.values()), "ON CONFLICT DO NOTHING"
)
_INSERT_EXCEPTIONS = _insert(
    "exception_step", list(_EXCEPTION_TYPES), list(_EXCEPTION_TYPES.values()),
    "ON CONFLICT DO NOTHING",
)  # fmt: skip
_INSERT_LINKS = _insert(
    "link", list(_LINK_TYPES), list(_LINK_TYPES.values()), "ON CONFLICT DO NOTHING"
)
_INSERT_SOURCES = _insert(
    "journal_source", ["journal_id", "source_event_id"], ["text", "text"], "ON CONFLICT DO NOTHING"
)
# A location's newest change wins (changes of one location may come in any order here).
_UPSERT_SITES = _insert(
    "site_location", list(_SITE_TYPES), list(_SITE_TYPES.values()),
    "ON CONFLICT (location_id) DO UPDATE SET site = EXCLUDED.site, active = EXCLUDED.active, "
    "entity_version = EXCLUDED.entity_version "
    "WHERE carebus_ops.site_location.entity_version <= EXCLUDED.entity_version",
)  # fmt: skip

_VISIT_TYPES = {"kind": "text", "entity_key": "text", "visit_key": "text"}
_INSERT_VISITS = _insert(
    "visit", list(_VISIT_TYPES), list(_VISIT_TYPES.values()), "ON CONFLICT DO NOTHING"
)

TABLES = ("step", "exception_step", "link", "journal_source", "site_location", "visit")


_ENCODER = msgspec.json.Encoder()  # the rows (dataclasses) as JSON objects named by column


def _newest_per_location(rows: Sequence[SiteLocation]) -> list[SiteLocation]:
    """One row per location (an upsert may not touch a row twice in one statement)."""
    newest: dict[str, SiteLocation] = {}
    for row in rows:
        known = newest.get(row.location_id)
        if known is None or known.entity_version <= row.entity_version:
            newest[row.location_id] = row
    return list(newest.values())


async def store(conn: Any, projection: Projection) -> None:
    """Store one batch's projection (the caller holds a transaction)."""
    plan: list[tuple[str, Sequence[Any]]] = [
        (_INSERT_STEPS, projection.steps),
        (_INSERT_EXCEPTIONS, projection.exceptions),
        (_INSERT_LINKS, sorted(set(projection.links), key=_link_order)),
        (_UPSERT_SITES, _newest_per_location(projection.site_locations)),
        (_INSERT_VISITS, sorted(set(projection.visits), key=_visit_order)),
        (_INSERT_SOURCES, [
            {"journal_id": j, "source_event_id": s}
            for j, s in sorted(set(projection.journal_sources))
        ]),
    ]  # fmt: skip
    for statement, rows in plan:
        if rows:
            await conn.execute(statement, _ENCODER.encode(rows).decode())


def _link_order(link: Link) -> tuple[str, str, str, str]:
    # A fixed order keeps concurrent batches from deadlocking on the same link rows.
    return (link.kind, link.entity_key, link.other_kind, link.other_key)


def _visit_order(visit: VisitKey) -> tuple[str, str, str]:
    return (visit.kind, visit.entity_key, visit.visit_key)


async def truncate(conn: Any) -> None:
    await conn.execute(f"TRUNCATE {', '.join(f'carebus_ops.{t}' for t in TABLES)}")


__all__ = ["TABLES", "store", "truncate"]
