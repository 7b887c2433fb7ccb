"""The console's own reads: open exceptions counted by site and reason, and which entity the
tracker filed an event under (to link an exception or a re-drive to a trace)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from carebus_ops.domain.projection import KINDS


@dataclass(frozen=True, slots=True)
class OpenCount:
    site: str
    reason: str
    count: int
    oldest: dt.datetime


async def open_by_site_and_reason(conn: Any) -> list[OpenCount]:
    rows = await conn.fetch(
        "SELECT coalesce(site, '') AS site, reason, count(*) AS n, min(recorded_at) AS oldest "
        "FROM carebus_exceptions.exception_record WHERE status = 'open' "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [OpenCount(r["site"], r["reason"], int(r["n"]), r["oldest"]) for r in rows]


async def entity_of_event(conn: Any, event_id: str) -> tuple[str, str] | None:
    """(kind, id) of the entity whose step ``event_id`` is, if the tracker has it."""
    row = await conn.fetchrow(
        "SELECT kind, entity_key FROM carebus_ops.step WHERE event_id = $1", event_id
    )
    return None if row is None else (str(row["kind"]), str(row["entity_key"]))


async def kinds_of_id(conn: Any, entity_id: str) -> list[str]:
    """The kinds the tracker knows an entity ``entity_id`` of (an id may name several)."""
    rows = await conn.fetch(
        "SELECT DISTINCT kind FROM carebus_ops.step "
        "WHERE kind = ANY($2::text[]) AND entity_key = $1",
        entity_id,
        list(KINDS),
    )
    found = {str(r["kind"]) for r in rows}
    return [kind for kind in KINDS if kind in found]
