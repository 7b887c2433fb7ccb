"""Properties of the mapping, for any valid event (hypothesis):
- the journal balances per currency and its per-account sums equal the oracle's;
- a reversal is the exact mirror of what it reverses;
- the idempotency key (and so the journal id) is stable across redelivery and re-validation;
- fencing holds whatever order an entity's versions arrive in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carebus_contracts import decode_message, encode, headers_for, subject_for
from carebus_contracts import validated as v
from carebus_contracts.erp import JournalEntryRequested, Side
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.domain.fencing import FenceView
from carebus_mapper.domain.mapping import Mapped, NoJournal, Outcome, map_facts
from carebus_mapper.handlers.stage import facts_for, map_event, once_ref
from tests.support.mapper import (
    ACTIVE,
    STATE_AFTER,
    adjustment,
    appointment,
    appointment_kinds,
    balanced_per_currency,
    billing_originals,
    charge,
    enrichments,
    expected_sums,
    journal_sums,
    payment,
    positive,
    previous_statuses,
    validate,
)

RULES = load_rule_set()
NOW = dt.datetime(2025, 3, 10, 16, 0, tzinfo=dt.UTC)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _map(event: v.Validated[Any], previous: str | None = None) -> Outcome:
    return map_facts(RULES, facts_for(RULES, event, previous), NOW)


def _assert_matches_oracle(event: v.Validated[Any], previous: str | None) -> None:
    outcome = _map(event, previous)
    expected = expected_sums(event, RULES, previous)
    if isinstance(outcome, Mapped):
        journal = outcome.journal
        assert journal.problems() == []
        assert balanced_per_currency(journal)
        assert journal_sums(journal) == expected
        assert journal.rule_set_version == RULES.version
        assert journal.mapping_rule == outcome.rule.id
        assert journal.source_event_ids == (event.original.event_id,)
    else:
        assert isinstance(outcome, NoJournal), outcome
        assert expected == {}


@PROPERTY
@given(original=billing_originals(), enrichment=enrichments())
def test_any_billing_event_balances_and_matches_the_oracle(
    original: Any, enrichment: v.Enrichment
) -> None:
    event = validate(original, enrichment)
    previous = "none" if event.event_type == "validated.claim.adjudicated" else None
    _assert_matches_oracle(event, previous)


@PROPERTY
@given(kind=appointment_kinds, previous=previous_statuses, enrichment=enrichments())
def test_any_appointment_event_balances_and_matches_the_oracle(
    kind: Any, previous: str, enrichment: v.Enrichment
) -> None:
    _assert_matches_oracle(validate(appointment(kind), enrichment), previous)


def _mirror(journal: JournalEntryRequested) -> list[tuple[object, ...]]:
    flip = {Side.DEBIT: Side.CREDIT, Side.CREDIT: Side.DEBIT}
    return [
        (line.account, flip[line.side], line.amount, line.dimensions, line.memo)
        for line in journal.lines
    ]


def _lines(journal: JournalEntryRequested) -> list[tuple[object, ...]]:
    return [(x.account, x.side, x.amount, x.dimensions, x.memo) for x in journal.lines]


@PROPERTY
@given(amount=positive, payer=st.sampled_from(["BCBS", None]), enrichment=enrichments())
def test_a_charge_reversal_is_the_exact_mirror_of_the_charge(
    amount: int, payer: str | None, enrichment: v.Enrichment
) -> None:
    posted = _map(validate(charge("CH-9", amount, payer), enrichment))
    reversed_ = _map(validate(charge("CH-9", amount, payer, reversed_=True), enrichment))
    assert isinstance(posted, Mapped)
    assert isinstance(reversed_, Mapped)
    assert _lines(reversed_.journal) == _mirror(posted.journal)


@PROPERTY
@given(amount=positive, enrichment=enrichments(), group=st.sampled_from(["CO", "PR", "OA"]))
def test_a_take_back_with_negative_amounts_mirrors_the_original(
    amount: int, enrichment: v.Enrichment, group: str
) -> None:
    from carebus_contracts.billing import CarcGroup

    for make in (
        lambda a: payment("PAY-9", a),
        lambda a: adjustment("ADJ-9", a, CarcGroup(group)),
    ):
        original = _map(validate(make(amount), enrichment))
        take_back = _map(validate(make(-amount), enrichment))
        assert isinstance(original, Mapped)
        assert isinstance(take_back, Mapped)
        assert _lines(take_back.journal) == _mirror(original.journal)


@PROPERTY
@given(original=billing_originals(), enrichment=enrichments())
def test_the_idempotency_key_is_stable(original: Any, enrichment: v.Enrichment) -> None:
    event = validate(original, enrichment)
    first = _map(event)
    # Redelivered: the same bytes decoded again, mapped at another time.
    again_event = decode_message(subject_for(event), encode(event), headers_for(event))
    assert isinstance(again_event, v.Validated)
    again = map_facts(RULES, facts_for(RULES, again_event, None), NOW + dt.timedelta(hours=5))
    # Re-validated (e.g. released from quarantine): a new validated event id, same source.
    revalidated = _map(validate(original, enrichment, validated_id="val-again"))
    if not isinstance(first, Mapped):
        assert type(first) is type(again) is type(revalidated)
        return
    assert isinstance(again, Mapped)
    assert isinstance(revalidated, Mapped)
    for other in (again.journal, revalidated.journal):
        assert (other.journal_id, other.event_id) == (
            first.journal.journal_id,
            first.journal.event_id,
        )
        assert _lines(other) == _lines(first.journal)
    # A new rule-set version is a new journal (the key is source event id + version).
    bumped = dataclasses.replace(RULES, version="2099.01.1")
    newer = map_facts(bumped, facts_for(bumped, event, None), NOW)
    assert isinstance(newer, Mapped)
    assert newer.journal.journal_id != first.journal.journal_id


@PROPERTY
@given(
    kinds=st.lists(appointment_kinds, min_size=1, max_size=8),
    seed=st.integers(min_value=0, max_value=2**32),
    batch=st.integers(min_value=1, max_value=4),
)
def test_fencing_holds_under_any_arrival_order(kinds: list[Any], seed: int, batch: int) -> None:
    """Versions 1..n of one appointment arrive shuffled (some twice): only a version newer
    than everything applied before it posts; the newest version wins; and the forecast
    balance ends at the expected fee exactly when the newest status is active."""
    events = [validate(appointment(kind, "A7", version)) for version, kind in enumerate(kinds, 1)]
    arrivals = events + random.Random(seed).sample(events, k=min(batch, len(events)))
    random.Random(seed + 1).shuffle(arrivals)
    view = FenceView({})
    applied_max = 0
    forecast = 0
    for event in arrivals:
        result = map_event(RULES, event, view, NOW)
        if event.entity_version > applied_max:
            assert result.label in ("journal", "no_journal"), result
            applied_max = event.entity_version
        else:
            assert result.label in ("stale", "duplicate")
            assert result.mapped is None
        if result.mapped is not None:
            forecast += journal_sums(result.mapped.journal).get(("9100", "USD"), 0)
    newest = events[-1]
    last = view.last((newest.site, "appointment", "A7"))
    assert last is not None
    assert last.version == len(events)
    assert last.state == STATE_AFTER[type(newest.original)]
    fee = RULES.fee_schedule["99213"]
    assert forecast == (fee if last.state in ACTIVE else 0)


def test_transactions_are_not_fenced() -> None:
    """A charge reversal may overtake its charge; both must post, netting to zero."""
    view = FenceView({})
    reversal = validate(charge("CH-5", 900, reversed_=True, version=2))
    posted = validate(charge("CH-5", 900, version=1))
    totals: dict[tuple[str, str], int] = {}
    for event in (reversal, posted):
        result = map_event(RULES, event, view, NOW)
        assert result.mapped is not None
        for key, value in journal_sums(result.mapped.journal).items():
            totals[key] = totals.get(key, 0) + value
    assert all(value == 0 for value in totals.values())
    # Each is remembered as mapped by its own event, not by the charge's version: the same
    # event again (a replay) is a duplicate.
    assert set(view.changed) == {once_ref(reversal), once_ref(posted)}
    assert map_event(RULES, posted, view, NOW).label == "duplicate"


@given(source=st.text(min_size=1, max_size=40), version=st.sampled_from(["2025.03.1", "x"]))
def test_journal_event_ids_are_the_stage_message_ids(source: str, version: str) -> None:
    from carebus_mapper.domain.journal import event_id_for, idempotency_key
    from carebus_shared.jetstream.publish import stage_msg_id

    key = idempotency_key(source, version)
    assert event_id_for(key) == stage_msg_id("mapper", key, 0)
