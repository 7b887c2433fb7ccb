"""Reading one trace from the tracker tables: the entity's steps, the entities it links to
(links, and journals through their source events), and the exceptions on its events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carebus_ops.domain.trace import Entity, TraceStep, exception_stage

_PAIRS = "SELECT * FROM unnest($1::text[], $2::text[]) AS e(kind, entity_key)"
_LINKED = f"""
SELECT l.kind, l.entity_key, l.other_kind, l.other_key FROM carebus_ops.link l
  JOIN ({_PAIRS}) e USING (kind, entity_key)
"""
_JOURNALS_OF = f"""
SELECT DISTINCT s.kind, s.entity_key, j.journal_id FROM carebus_ops.step s
  JOIN ({_PAIRS}) e USING (kind, entity_key)
  JOIN carebus_ops.journal_source j ON j.source_event_id = s.event_id
"""
_SOURCES_OF = """
SELECT DISTINCT j.journal_id, s.kind, s.entity_key FROM carebus_ops.journal_source j
  JOIN carebus_ops.step s ON s.event_id = j.source_event_id
 WHERE j.journal_id = ANY($1::text[])
"""
_STEPS = f"""
SELECT s.* FROM carebus_ops.step s JOIN ({_PAIRS}) e USING (kind, entity_key)
"""
_EXCEPTIONS = f"""
SELECT x.*, s.kind, s.entity_key FROM carebus_ops.exception_step x
  JOIN carebus_ops.step s ON s.event_id = x.failed_event_id
  JOIN ({_PAIRS}) e ON e.kind = s.kind AND e.entity_key = s.entity_key
"""


def _columns(entities: Sequence[Entity]) -> tuple[list[str], list[str]]:
    return [e[0] for e in entities], [e[1] for e in entities]


async def neighbours(conn: Any, entities: Sequence[Entity]) -> list[tuple[Entity, Entity]]:
    """(entity, neighbour) pairs: links, an entity's journals, a journal's sources."""
    kinds, keys = _columns(entities)
    found = [
        ((r["kind"], r["entity_key"]), (r["other_kind"], r["other_key"]))
        for r in await conn.fetch(_LINKED, kinds, keys)
    ]
    found += [
        ((r["kind"], r["entity_key"]), ("journal", r["journal_id"]))
        for r in await conn.fetch(_JOURNALS_OF, kinds, keys)
    ]
    journals = [key for kind, key in entities if kind == "journal"]
    if journals:
        found += [
            (("journal", r["journal_id"]), (r["kind"], r["entity_key"]))
            for r in await conn.fetch(_SOURCES_OF, journals)
        ]
    return found


async def steps(conn: Any, entities: Sequence[Entity]) -> list[TraceStep]:
    kinds, keys = _columns(entities)
    out = [
        TraceStep(
            at=r["recorded_at"],
            kind=r["kind"],
            id=r["entity_key"],
            stage=r["stage"],
            event_type=r["event_type"],
            event_id=r["event_id"],
            site=r["site"],
            stream=r["stream"],
            stream_seq=r["stream_seq"],
            subject=r["subject"],
            occurred_at=r["occurred_at"],
            status=r["status"],
            erp_document=r["erp_document"],
        )
        for r in await conn.fetch(_STEPS, kinds, keys)
    ]
    out += [
        TraceStep(
            at=r["recorded_at"],
            kind=r["kind"],
            id=r["entity_key"],
            stage=exception_stage(r["stage"], r["reason"]),
            event_type="exceptions.exception.raised",
            event_id=r["event_id"],
            site=r["site"],
            stream=r["stream"],
            stream_seq=r["stream_seq"],
            subject=r["subject"],
            reason=r["reason"],
            reason_code=r["reason_code"],
            exception_stage=r["stage"],
        )
        for r in await conn.fetch(_EXCEPTIONS, kinds, keys)
    ]
    return out
