"""Per-entity version fencing for entities whose events are state snapshots.

Appointments and claims (the rule set's ``fenced_entities``) publish their whole state on
every change with a growing ``entity_version``. Applying an older version after a newer one
would post a state the entity has already left, so the mapper keeps the last applied
version per entity and decides, for each event, one of:

- ``apply``: newer than anything applied (or the first seen): map it;
- ``duplicate``: the very event applied last (same source event id), e.g. redelivered after
  its journal was published but before the ack: its journal is already on the ERP stream;
- ``stale``: not newer and not the same event: no journal, acknowledged, counted.
Transactions (charges, payments, adjustments) are not fenced: each event is its own posting
and a charge reversal that overtakes its charge must still post both.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

EntityRef = tuple[str, str, str]
"""(site, entity, entity_key)."""


class Decision(enum.StrEnum):
    APPLY = "apply"
    DUPLICATE = "duplicate"
    STALE = "stale"


class Applied(msgspec.Struct, frozen=True):
    version: int
    source_event_id: str
    state: str | None


def decide(last: Applied | None, version: int, source_event_id: str) -> Decision:
    if last is None or version > last.version:
        return Decision.APPLY
    if source_event_id == last.source_event_id:
        return Decision.DUPLICATE
    return Decision.STALE


class FenceView:
    """The applied versions a batch started from, plus what the batch applied so far (in
    stream order), so that two versions of one entity in the same batch fence each other."""

    def __init__(self, loaded: Mapping[EntityRef, Applied]) -> None:
        self._state: dict[EntityRef, Applied] = dict(loaded)
        self.changed: dict[EntityRef, Applied] = {}

    def last(self, ref: EntityRef) -> Applied | None:
        return self._state.get(ref)

    def apply(self, ref: EntityRef, applied: Applied) -> None:
        self._state[ref] = applied
        self.changed[ref] = applied
