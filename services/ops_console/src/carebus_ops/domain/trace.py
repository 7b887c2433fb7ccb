"""A trace: one entity's timeline with its linked entities' steps, and where it stands.
Pure: built from rows the trace store read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from carebus_ops.domain.projection import EXCEPTION, JOURNAL, QUARANTINED, RECEIVED

# A trace follows links this many hops out (appointment → charge → claim, charge → journal).
DEPTH = 2

Entity = tuple[str, str]  # (kind, key)


class TraceStep(msgspec.Struct, frozen=True, kw_only=True):
    at: dt.datetime
    kind: str
    id: str
    stage: str
    event_type: str
    event_id: str
    site: str
    stream: str
    stream_seq: int
    subject: str
    occurred_at: dt.datetime | None = None
    status: str | None = None
    erp_document: str | None = None
    reason: str | None = None
    reason_code: str | None = None
    exception_stage: str | None = None


class LinkedEntity(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    site: str
    stage: str
    via: str | None
    """The entity it was reached through (``kind:id``), None for the traced one itself."""


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    site: str
    stage: str
    """Where it stands: the latest step of the entity and its own journals."""
    linked: list[LinkedEntity]
    timeline: list[TraceStep]
    """Every step of the entity and its linked entities, oldest first."""
    truncated: bool = False


def exception_stage(stage: str, reason: str) -> str:
    return QUARANTINED if stage == "masterdata_validator" and reason == "masterdata" else EXCEPTION


def _ordered(steps: Iterable[TraceStep]) -> list[TraceStep]:
    return sorted(steps, key=lambda s: (s.at, s.stream, s.stream_seq))


def standing(steps: Sequence[TraceStep]) -> str:
    return _ordered(steps)[-1].stage if steps else RECEIVED


def assemble(
    root: Entity,
    reached: dict[Entity, str | None],
    steps: Sequence[TraceStep],
    *,
    truncated: bool,
) -> Trace:
    """``reached``: every entity of the trace → the one it was reached through."""
    by_entity: dict[Entity, list[TraceStep]] = {}
    for step in steps:
        by_entity.setdefault((step.kind, step.id), []).append(step)
    own = by_entity.get(root, [])
    # An entity stands where its latest step is, its own journals' steps included.
    journals = [
        e for e, via in reached.items() if e[0] == JOURNAL and via == f"{root[0]}:{root[1]}"
    ]
    root_view = own + [s for j in journals for s in by_entity.get(j, [])]
    linked = [
        LinkedEntity(
            kind=e[0],
            id=e[1],
            site=(by_entity.get(e) or [own[0]])[0].site,
            stage=standing(by_entity.get(e, [])),
            via=via,
        )
        for e, via in reached.items()
        if e != root and e in by_entity
    ]
    return Trace(
        kind=root[0],
        id=root[1],
        site=own[0].site,
        stage=standing(root_view),
        linked=sorted(linked, key=lambda x: (x.kind, x.id)),
        timeline=_ordered(steps),
        truncated=truncated,
    )
