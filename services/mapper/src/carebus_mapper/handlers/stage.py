"""The mapping stage: map a batch of validated events to journals, publish, fence.

A batch is mapped in stream order. Fenced entities (appointments, claims) are checked
against the applied versions, read once per batch (with what batches still in flight
applied laid over them); their journals are published and confirmed *before* the new
versions are stored (the stage runner calls ``save`` after the confirmations), so a stored
version always means "its journal is on the ERP stream": a redelivery after a crash either
republishes into the duplicate window (version not stored yet) or is recognised as the
duplicate it is.
Transactions (not fenced) are remembered the same way, each by its source event, so an
event mapped once is a duplicate when it comes again, whatever the rule-set version.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.aio.msg import Msg

from carebus_contracts import (
    ContractDecodeError,
    UnknownContractError,
    decode_message,
)
from carebus_contracts.validated import Validated
from carebus_mapper.adapters.metrics import MapperMetrics
from carebus_mapper.domain.amounts import UnitMismatch
from carebus_mapper.domain.facts import Facts, UnsupportedEvent, extract
from carebus_mapper.domain.fencing import Applied, Decision, EntityRef, FenceView, decide
from carebus_mapper.domain.mapping import Mapped, NoJournal, Outcome, Unmapped, map_facts
from carebus_mapper.domain.rules import NO_PREVIOUS, RuleSet
from carebus_shared.jetstream.publish import outgoing_for
from carebus_shared.jetstream.stage import Forward, Reject
from carebus_shared.jetstream.stage import Outcome as StageOutcome
from carebus_shared.logs import bind_event

log = logging.getLogger("carebus.mapper")

LoadApplied = Callable[[Sequence[EntityRef]], Awaitable[Mapping[EntityRef, Applied]]]
SaveApplied = Callable[[Mapping[EntityRef, Applied]], Awaitable[None]]
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Transactions are not fenced by version (each posts), but each is mapped once: it is
# remembered under this entity, keyed by its source event id. Its journal's key holds the
# rule-set version, so mapping it again under another version (a replay, a redelivery
# across a deployment) would request a second journal that the poster posts too
# (docs/decisions/015).
MAPPED_ONCE = "event"


def entity_ref(rules: RuleSet, event: Validated[Any]) -> EntityRef | None:
    """The fencing key of ``event``, or None when its entity is not fenced."""
    entity = event.event_type.split(".")[1]
    if entity not in rules.fenced_entities:
        return None
    return (event.site, entity, event.entity_key)


def once_ref(event: Validated[Any]) -> EntityRef:
    """The key under which an event of an entity that is not fenced is remembered as mapped."""
    return (event.site, MAPPED_ONCE, event.original.event_id)


def applied_ref(rules: RuleSet, event: Validated[Any]) -> EntityRef:
    """Where mapping ``event`` is remembered: its entity when fenced, else the event itself."""
    return entity_ref(rules, event) or once_ref(event)


def facts_for(rules: RuleSet, event: Validated[Any], previous_status: str | None) -> Facts:
    return extract(
        event,
        fee_schedule=rules.fee_schedule,
        fee_currency=rules.fee_currency,
        statistical_unit=rules.statistical_unit,
        previous_status=previous_status,
    )


def state_of(facts: Facts) -> str | None:
    """What a fenced entity's state becomes: its status (appointment or claim)."""
    return facts.selectors.get(f"{facts.entity}_status")


def decode_validated(msg: Msg) -> Validated[Any] | Reject:
    headers = msg.headers or {}
    event_id = headers.get("Nats-Msg-Id")
    try:
        event = decode_message(msg.subject, msg.data, headers)
    except ContractDecodeError as exc:
        return Reject(
            "contract", "contract_decode_error", str(exc), event_id=event_id, path=exc.path
        )
    except UnknownContractError as exc:
        return Reject("contract", "unknown_contract", str(exc), event_id=event_id)
    if not isinstance(event, Validated):
        return Reject(
            "contract",
            "not_a_validated_event",
            f"{event.event_type} on {msg.subject}: the mapper reads validated events only",
            site=event.site,
            event_id=event.event_id,
        )
    return event


def reject_unmapped(event: Validated[Any], result: Unmapped) -> Reject:
    return Reject(
        "mapping",
        result.reason,
        result.message,
        site=event.site,
        event_id=event.event_id,
        path=result.path,
        offending_value=result.offending_value,
    )


class EventResult(msgspec.Struct, frozen=True):
    """What mapping one decoded event came to: ``label`` is the metric outcome."""

    label: str
    mapped: Mapped | None = None
    rejection: Reject | None = None
    rule_id: str | None = None


def map_event(
    rules: RuleSet, event: Validated[Any], view: FenceView, now: dt.datetime
) -> EventResult:
    """Fence, map and (for fenced entities) record one event in ``view``.

    Shared by the stage and the shadow replay, so both decide exactly alike.
    """
    ref = entity_ref(rules, event)
    previous: str | None = None
    if ref is not None:
        last = view.last(ref)
        decision = decide(last, event.entity_version, event.original.event_id)
        if decision is not Decision.APPLY:
            if decision is Decision.STALE:
                log.info(
                    "stale update skipped",
                    extra={
                        "entity_version": event.entity_version,
                        "applied_version": last.version if last else None,
                    },
                )
            return EventResult(decision.value)
        previous = (last.state if last else None) or NO_PREVIOUS
    elif view.last(once_ref(event)) is not None:
        return EventResult(Decision.DUPLICATE.value)
    try:
        facts = facts_for(rules, event, previous)
    except UnitMismatch as exc:
        return EventResult(
            "unmapped", rejection=reject_unmapped(event, Unmapped("mixed_currency", str(exc)))
        )
    except UnsupportedEvent as exc:
        return EventResult("invalid", rejection=Reject("contract", "unsupported_event", str(exc)))
    result: Outcome = map_facts(rules, facts, now)
    if isinstance(result, Unmapped):
        log.warning("mapping exception", extra={"reason": result.reason})
        rule_id = result.rule.id if result.rule else None
        return EventResult("unmapped", rejection=reject_unmapped(event, result), rule_id=rule_id)
    if ref is not None:
        view.apply(ref, Applied(event.entity_version, facts.source_event_id, state_of(facts)))
    else:
        view.apply(once_ref(event), Applied(1, facts.source_event_id, None))
    if isinstance(result, NoJournal):
        label = "zero_amount" if result.reason == "zero_amount" else "no_journal"
        return EventResult(label, rule_id=result.rule.id)
    return EventResult("journal", mapped=result, rule_id=result.rule.id)


@dataclass
class BatchMapper:
    """The stage handler: ``await mapper(msgs)`` returns one outcome per message, a journal
    to publish with each that maps to one. What it applied is kept aside per message (see
    :class:`~carebus_shared.jetstream.stage.BatchState`) until the stage runner has the
    journals confirmed and calls :meth:`save`; the next batch, handled meanwhile, fences
    against it as if it were stored (docs/decisions/033)."""

    rules: RuleSet
    load_applied: LoadApplied
    save_applied: SaveApplied
    metrics: MapperMetrics | None = None
    clock: Clock = utc_now
    # Stream sequence of a handled message → what it applied, in the order handled.
    _unsaved: dict[int, tuple[EntityRef, Applied]] = field(default_factory=dict, init=False)

    def _count(self, event: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_event(event, outcome)

    async def __call__(self, msgs: Sequence[Msg]) -> list[StageOutcome]:
        outcomes: list[StageOutcome] = [Forward() for _ in msgs]
        decoded: list[tuple[int, Validated[Any]]] = []
        for index, msg in enumerate(msgs):
            event = decode_validated(msg)
            if isinstance(event, Reject):
                outcomes[index] = event
                self._count("unknown", "invalid")
            else:
                decoded.append((index, event))
        refs = [applied_ref(self.rules, e) for _, e in decoded]
        # Taken before the read: what a batch in flight saves meanwhile is in one or the other.
        unsaved = self._unsaved_before(msgs)
        loaded = await self.load_applied(refs) if refs else {}
        view = FenceView({**loaded, **{r: unsaved[r] for r in refs if r in unsaved}})
        applied: dict[int, tuple[EntityRef, Applied]] = {}
        lines = 0
        now = self.clock()
        for (index, event), ref in zip(decoded, refs, strict=True):
            before = view.changed.get(ref)
            with bind_event(event.event_id, event.correlation_id, event.causation_id):
                result = map_event(self.rules, event, view, now)
            after = view.changed.get(ref)
            if after is not None and after is not before:
                applied[_seq(msgs[index])] = (ref, after)
            if result.rejection is not None:
                outcomes[index] = result.rejection
            if result.mapped is not None:
                outcomes[index] = Forward((outgoing_for(result.mapped.journal),))
                lines += len(result.mapped.journal.lines)
            self._count(event.event_type.removeprefix("validated."), result.label)
        self._unsaved.update(applied)
        if self.metrics is not None:
            self.metrics.journal_lines.inc(lines)
        return outcomes

    def _unsaved_before(self, msgs: Sequence[Msg]) -> dict[EntityRef, Applied]:
        """What batches handled before ``msgs`` applied and have not saved yet, newest last."""
        own = {_seq(m) for m in msgs}
        return {ref: a for seq, (ref, a) in self._unsaved.items() if seq not in own}

    async def save(self, msgs: Sequence[Msg]) -> None:
        """Store what ``msgs`` applied (their journals are confirmed)."""
        seqs = [s for s in map(_seq, msgs) if s in self._unsaved]
        if seqs:
            await self.save_applied(dict(self._unsaved[s] for s in seqs))
        for seq in seqs:
            del self._unsaved[seq]

    def discard(self, msgs: Sequence[Msg]) -> None:
        """Forget what ``msgs`` applied: they come back and are mapped again."""
        for seq in map(_seq, msgs):
            self._unsaved.pop(seq, None)


def _seq(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)
