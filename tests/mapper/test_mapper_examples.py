"""The contracts' golden validated examples through the default rules, spelled out: the
rule each one matches and what it posts (the chart of accounts in services/mapper/README.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from carebus_contracts.examples import build_examples
from carebus_contracts.validated import Validated
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.domain.mapping import Mapped, NoJournal, map_facts
from carebus_mapper.handlers.stage import facts_for
from tests.support.mapper import journal_sums

RULES = load_rule_set()
EXAMPLES = {e.event_type: e for e, _ in build_examples() if isinstance(e, Validated)}
FEE = 12500  # fee schedule entry for 99213

EXPECTED: dict[str, tuple[str, dict[tuple[str, str], int], str]] = {
    "validated.appointment.booked": (
        "appointment-booked",
        {("9000", "XXX"): 1, ("9099", "XXX"): -1, ("9100", "USD"): FEE, ("9199", "USD"): -FEE},
        "2025-03-14",
    ),
    "validated.appointment.rescheduled": (
        "appointment-rescheduled-reactivated",
        {("9030", "XXX"): 1, ("9099", "XXX"): -1, ("9100", "USD"): FEE, ("9199", "USD"): -FEE},
        "2025-03-14",
    ),
    "validated.appointment.cancelled": (
        "appointment-cancelled",
        {("9010", "XXX"): 1, ("9099", "XXX"): -1},
        "2025-03-14",
    ),
    "validated.appointment.no_show": (
        "appointment-no-show",
        {("9020", "XXX"): 1, ("9099", "XXX"): -1},
        "2025-03-14",
    ),
    "validated.appointment.completed": (
        "appointment-completed",
        {("9040", "XXX"): 1, ("9099", "XXX"): -1},
        "2025-03-14",
    ),
    "validated.charge.posted": (
        "charge-posted",
        {("1200", "USD"): 12500, ("4000", "USD"): -12500},
        "2025-03-14",
    ),
    "validated.charge.reversed": (
        "charge-reversed",
        {("1200", "USD"): -12500, ("4000", "USD"): 12500},
        "2025-03-10",
    ),
    "validated.payment.posted": (
        "payment-posted",
        {("1010", "USD"): 8000, ("1200", "USD"): -8000},
        "2025-04-02",
    ),
    "validated.adjustment.posted": (
        "adjustment-contractual",
        {("4900", "USD"): 2500, ("1200", "USD"): -2500},
        "2025-03-10",
    ),
    "validated.claim.adjudicated": (
        "claim-paid",
        {("9300", "XXX"): 1, ("9099", "XXX"): -1},
        "2025-04-01",
    ),
}
NOW = dt.datetime(2025, 3, 10, 16, tzinfo=dt.UTC)


def _previous(event: Validated[Any]) -> str | None:
    return "none" if event.event_type.split(".")[1] in RULES.fenced_entities else None


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_golden_example_posts_what_the_chart_says(event_type: str) -> None:
    event = EXAMPLES[event_type]
    rule_id, sums, posting_date = EXPECTED[event_type]
    outcome = map_facts(RULES, facts_for(RULES, event, _previous(event)), NOW)
    assert isinstance(outcome, Mapped), outcome
    journal = outcome.journal
    assert outcome.rule.id == rule_id
    assert journal_sums(journal) == sums
    assert journal.posting_date.isoformat() == posting_date
    assert journal.company == "CAREBUS-HEALTH"
    assert journal.rule_set_version == "2025.03.2"
    assert journal.causation_id == event.event_id
    revenue = [line for line in journal.lines if line.account in ("4000", "9100", "9000")]
    for line in revenue:
        assert line.dimensions.cost_centre == "CC-100"
        assert line.dimensions.department == "D-CARDIO"
        assert line.dimensions.location == "L-1"


@pytest.mark.parametrize(
    "event_type", ["validated.appointment.modified", "validated.appointment.checked_in"]
)
def test_modified_or_checked_in_while_active_posts_nothing(event_type: str) -> None:
    event = EXAMPLES[event_type]
    outcome = map_facts(RULES, facts_for(RULES, event, "booked"), NOW)
    assert isinstance(outcome, NoJournal)
    assert outcome.rule.id == "appointment-unchanged"


def test_cancellation_of_an_active_appointment_releases_its_forecast() -> None:
    event = EXAMPLES["validated.appointment.cancelled"]
    outcome = map_facts(RULES, facts_for(RULES, event, "booked"), NOW)
    assert isinstance(outcome, Mapped)
    assert outcome.rule.id == "appointment-cancelled-released"
    assert journal_sums(outcome.journal)[("9100", "USD")] == -FEE


REQUESTS = ["validated.appointment.requested", "validated.appointment.request_cancelled"]


@pytest.mark.parametrize("event_type", REQUESTS)
@pytest.mark.parametrize("previous", ["none", "requested", "cancelled", "no_show", "completed"])
def test_a_request_is_tracked_and_posts_nothing(event_type: str, previous: str) -> None:
    outcome = map_facts(RULES, facts_for(RULES, EXAMPLES[event_type], previous), NOW)
    assert isinstance(outcome, NoJournal), outcome
    assert outcome.rule.id == "appointment-request"
    assert outcome.reason == "no_financial_effect"


@pytest.mark.parametrize(
    ("event_type", "rule_id", "counts"),
    [
        ("validated.appointment.requested", "appointment-request-released", {}),
        ("validated.appointment.request_cancelled", "appointment-request-cancelled-released",
         {("9010", "XXX"): 1, ("9099", "XXX"): -1}),
    ],
)  # fmt: skip
def test_a_request_for_an_active_appointment_releases_its_forecast(
    event_type: str, rule_id: str, counts: dict[tuple[str, str], int]
) -> None:
    """Back on the waitlist, or cancelled without its time: the appointment is no longer
    active, so the forecast it raised is released, dated the day it happened (no slot)."""
    event = EXAMPLES[event_type]
    outcome = map_facts(RULES, facts_for(RULES, event, "booked"), NOW)
    assert isinstance(outcome, Mapped), outcome
    assert outcome.rule.id == rule_id
    assert journal_sums(outcome.journal) == {**counts, ("9199", "USD"): FEE, ("9100", "USD"): -FEE}
    assert outcome.journal.posting_date.isoformat() == "2025-03-10"


def test_booking_a_request_raises_the_forecast() -> None:
    event = EXAMPLES["validated.appointment.booked"]
    outcome = map_facts(RULES, facts_for(RULES, event, "requested"), NOW)
    assert isinstance(outcome, Mapped), outcome
    assert outcome.rule.id == "appointment-booked"
    assert journal_sums(outcome.journal)[("9100", "USD")] == FEE


def test_every_example_type_is_covered() -> None:
    covered = (
        set(EXPECTED)
        | {"validated.appointment.modified", "validated.appointment.checked_in"}
        | set(REQUESTS)
    )
    assert set(EXAMPLES) <= covered
