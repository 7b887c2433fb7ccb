"""The applied entity versions, in PostgreSQL (schema carebus_mapper): one read and one
upsert per batch, whatever its size.

The upsert only ever raises a version (``WHERE stored < new``), so two replicas that race
on one entity can never move it backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from carebus_mapper.domain.fencing import Applied, EntityRef

# By key alone (see migration 003 and docs/decisions/010); the rare same key at another site
# or of another entity is dropped below. A function that never scans the table (migration
# 004): with statistics older than the table the plain statement did (docs/decisions/031).
_SELECT = "SELECT * FROM carebus_mapper.applied_versions($1::text[])"

_UPSERT = """
INSERT INTO carebus_mapper.entity_version
    (site, entity, entity_key, entity_version, source_event_id, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
ON CONFLICT (site, entity, entity_key) DO UPDATE
SET entity_version = EXCLUDED.entity_version,
    source_event_id = EXCLUDED.source_event_id,
    state = EXCLUDED.state,
    applied_at = now()
WHERE carebus_mapper.entity_version.entity_version < EXCLUDED.entity_version
"""


async def load_applied(conn: Any, refs: Iterable[EntityRef]) -> dict[EntityRef, Applied]:
    wanted = set(refs)
    if not wanted:
        return {}
    rows = await conn.fetch(_SELECT, sorted({ref[2] for ref in wanted}))
    found = {}
    for row in rows:
        ref = (row["site"], row["entity"], row["entity_key"])
        if ref in wanted:
            found[ref] = Applied(row["entity_version"], row["source_event_id"], row["state"])
    return found


async def save_applied(conn: Any, applied: Mapping[EntityRef, Applied]) -> None:
    if not applied:
        return
    refs = list(applied)
    await conn.execute(
        _UPSERT,
        [r[0] for r in refs],
        [r[1] for r in refs],
        [r[2] for r in refs],
        [applied[r].version for r in refs],
        [applied[r].source_event_id for r in refs],
        [applied[r].state for r in refs],
    )
