"""The fault suite's checker, on observations made up from the oracle: every class it can
give an event, and the natural keys that tie facts to stored events (no servers needed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from carebus_scenario.checker import (
    DEAD_LETTERED,
    DUPLICATED,
    LOST,
    OK,
    UNEXPECTED,
    JournalRequest,
    KeptRecord,
    Observed,
    Posted,
    StoredEvent,
    Verdict,
    classify,
    event_key,
    fact_keys,
    natural_key,
)
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.model import (
    AdjustmentFact,
    AppointmentFact,
    ChargeFact,
    ClaimFact,
    Fact,
    PaymentFact,
)
from carebus_scenario.oracle import (
    JOURNAL,
    NO_JOURNAL,
    PARKED,
    QUEUED_BEHIND,
    STALE,
    Expectation,
    expect,
)
from tests.chaos.faults import TINY


@pytest.fixture(scope="module")
def day() -> tuple[Scenario, Expectation]:
    scenario = generate(TINY)
    return scenario, expect(scenario)


def _body(fact: Fact, natural: tuple[Any, ...], event_id: str) -> dict[str, Any]:
    """The contract fields of the adapter event for ``fact`` that the checker reads."""
    body: dict[str, Any] = {"event_id": event_id, "site": fact.site}
    match fact:
        case AppointmentFact():
            body |= {"event_type": f"scheduling.appointment.{fact.event}",
                     "entity_version": fact.version,
                     "appointment": {"appointment_id": fact.appointment_id}}  # fmt: skip
        case ChargeFact():
            kind = "reversed" if fact.reversal else "posted"
            body |= {
                "event_type": f"billing.charge.{kind}",
                "charge": {"charge_id": fact.charge_id},
            }
        case ClaimFact():
            body |= {"event_type": "billing.claim.adjudicated", "claim_id": fact.claim_id,
                     "entity_version": fact.version}  # fmt: skip
        case PaymentFact():
            body |= {"event_type": "billing.payment.posted", "payment_id": fact.payment_id,
                     "amount": {"amount_minor": fact.amount_minor}, "claim_id": None}  # fmt: skip
            if len(natural) == 5:  # an 835's: its claim and version
                body |= {"claim_id": natural[2], "entity_version": natural[3]}
        case AdjustmentFact():
            body |= {"event_type": "billing.adjustment.posted", "scope": fact.scope,
                     "payer_code": fact.payer_code, "group_code": fact.group,
                     "reason_code": fact.reason, "amount": {"amount_minor": fact.amount_minor},
                     "adjustment_id": fact.adjustment_id, "claim_id": None}  # fmt: skip
            if fact.scope != "provider":
                body |= {"claim_id": natural[2], "entity_version": natural[3]}
    return body


def perfect(scenario: Scenario, expected: Expectation) -> Observed:
    """What the suite would hold had everything gone as the oracle says."""
    seen = Observed()
    for n, (natural, key) in enumerate(fact_keys(scenario).items(), 1):
        want = expected.events[key]
        event_id = f"ev-{n}"
        stream = want.fact.stream
        seen.events.append(StoredEvent(stream, n, event_id, _body(want.fact, natural, event_id)))
        if want.outcome == JOURNAL:
            seen.requests.append(JournalRequest(n, f"req-{n}", f"JE-{n}", (event_id,)))
            lines = tuple(
                sorted((x.account, x.side, x.amount_minor, x.currency) for x in want.lines)
            )
            seen.posted.append(Posted(f"JE-{n}", f"JE-{n}", want.site, lines))
        elif want.outcome == PARKED and want.reason != QUEUED_BEHIND:
            seen.records.append(_record(n, "masterdata", want.reason or "", event_id=event_id))
    for n, refusal in enumerate(expected.refusals, 10_000):
        seen.records.append(_record(n, refusal.category, refusal.reason, digest=refusal.digest))
    return seen


def _record(n: int, category: str, reason: str, *, event_id: str | None = None,
            digest: str | None = None, stream: str | None = None,
            seq: int | None = None) -> KeptRecord:  # fmt: skip
    return KeptRecord(n, "stage", category, reason, "open", event_id, stream, seq, digest)


def _verdict_of(verdict: Verdict, key: str) -> str:
    return next(i.verdict for i in verdict.items if i.what.startswith(f"{key} "))


def _one_journal(
    day: tuple[Scenario, Expectation],
) -> tuple[Scenario, Expectation, Observed, str, int]:
    """The day, its perfect observation, a fact that must post and its entry's index."""
    scenario, expected = day
    seen = perfect(scenario, expected)
    keys = list(fact_keys(scenario).values())
    for index, entry in enumerate(seen.posted):
        key = keys[int(entry.journal_id.removeprefix("JE-")) - 1]
        if expected.events[key].outcome == JOURNAL:
            return scenario, expected, seen, key, index
    raise AssertionError("no journal in the day")


def test_everything_as_the_oracle_says_is_ok(day: tuple[Scenario, Expectation]) -> None:
    scenario, expected = day
    verdict = classify(scenario, expected, perfect(scenario, expected))
    assert verdict.counts == {OK: len(expected.events) + len(expected.refusals)}
    assert verdict.problems() == []


def test_an_entry_missing_is_lost_and_kept_is_dead_lettered(
    day: tuple[Scenario, Expectation],
) -> None:
    scenario, expected, seen, key, index = _one_journal(day)
    del seen.posted[index]
    assert _verdict_of(classify(scenario, expected, seen), key) == LOST
    n = index + 1
    seen.records.append(
        _record(99_999, "erp_rejection", "deliveries_exhausted", event_id=f"req-{n}")
    )
    verdict = classify(scenario, expected, seen)
    assert _verdict_of(verdict, key) == DEAD_LETTERED
    assert verdict[DEAD_LETTERED] == 1
    assert verdict[LOST] == 0
    # Once re-driven, the record no longer counts: the event is lost until it posts.
    seen.records[-1] = replace(seen.records[-1], status="redriven")
    assert _verdict_of(classify(scenario, expected, seen), key) == LOST


def test_a_second_entry_or_a_second_stored_event_is_a_duplicate(
    day: tuple[Scenario, Expectation],
) -> None:
    scenario, expected, seen, key, index = _one_journal(day)
    entry = seen.posted[index]
    seen.posted.append(replace(entry, key=f"{entry.key}~1"))
    verdict = classify(scenario, expected, seen)
    assert _verdict_of(verdict, key) == DUPLICATED
    assert verdict[DUPLICATED] == 1
    assert verdict[OK] == verdict.events - 1

    seen = perfect(scenario, expected)
    first = seen.events[0]
    seen.events.append(replace(first, seq=99_999, event_id="another-id"))
    verdict = classify(scenario, expected, seen)
    assert verdict[DUPLICATED] == 1
    assert "stored 2 times" in verdict.problems()[0]


def test_what_the_scenario_never_sent_or_must_not_post_is_unexpected(
    day: tuple[Scenario, Expectation],
) -> None:
    scenario, expected = day
    seen = perfect(scenario, expected)
    seen.posted.append(Posted("JE-nobody", "JE-nobody", "SITE01", (("1010", "debit", 1, "USD"),)))
    seen.events.append(StoredEvent("SCHEDULING", 99_999, "stray", {"event_type": "x.y"}))
    assert classify(scenario, expected, seen)[UNEXPECTED] == 2

    seen = perfect(scenario, expected)
    quiet = next(k for k, e in expected.events.items() if e.outcome in (STALE, NO_JOURNAL))
    natural = next(n for n, k in fact_keys(scenario).items() if k == quiet)
    event_id = next(e.event_id for e in seen.events if event_key(e.body) == natural)
    seen.requests.append(JournalRequest(99_999, "req-x", "JE-x", (event_id,)))
    seen.posted.append(Posted("JE-x", "JE-x", "SITE01", ()))
    assert _verdict_of(classify(scenario, expected, seen), quiet) == UNEXPECTED


def test_an_entry_with_other_lines_is_unexpected(day: tuple[Scenario, Expectation]) -> None:
    scenario, expected, seen, key, index = _one_journal(day)
    entry = seen.posted[index]
    account, side, amount, currency = entry.lines[0]
    wrong = ((account, side, amount + 1, currency), *entry.lines[1:])
    seen.posted[index] = replace(entry, lines=wrong)
    assert _verdict_of(classify(scenario, expected, seen), key) == UNEXPECTED


def test_an_event_missing_from_its_stream_or_a_refusal_not_kept_is_lost(
    day: tuple[Scenario, Expectation],
) -> None:
    scenario, expected = day
    seen = perfect(scenario, expected)
    parked = next(
        k for k, e in expected.events.items() if e.outcome == PARKED and e.reason != QUEUED_BEHIND
    )
    seen.records = [r for r in seen.records if r.reason != expected.events[parked].reason]
    seen.events.pop()
    seen.records = [r for r in seen.records if r.raw_digest != expected.refusals[0].digest]
    verdict = classify(scenario, expected, seen)
    assert _verdict_of(verdict, parked) == LOST
    assert verdict[LOST] >= 3
    assert any("not in its stream" in p for p in verdict.problems(100))
    assert any(p.startswith("lost: refused input") for p in verdict.problems(100))


def test_poison_kept_by_stream_and_sequence_is_dead_lettered(
    day: tuple[Scenario, Expectation],
) -> None:
    scenario, expected = day
    seen = perfect(scenario, expected)
    seen.events.append(StoredEvent("SCHEDULING", 77_777, "poison-1", {"event_type": "x"}))
    seen.events.append(StoredEvent("SCHEDULING", 77_778, "poison-2", {"event_type": "x"}))
    seen.records.append(_record(1, "transport", "handler_failed", stream="SCHEDULING", seq=77_777))
    verdict = classify(scenario, expected, seen, extra_dead_letters=["poison-1", "poison-2"])
    assert verdict[DEAD_LETTERED] == 1
    assert verdict[LOST] == 1  # poison-2 was never kept
    assert verdict[UNEXPECTED] == 0


@pytest.mark.parametrize("config", [TINY, SMALL], ids=["tiny", "small"])
def test_every_fact_has_a_natural_key_of_its_own(config: Any) -> None:
    scenario = generate(config)
    facts = {f.key for d in scenario.deliveries for f in d.facts}
    assert len(fact_keys(scenario)) == len(facts)
    assert all(natural_key(f)[0] != "unknown" for d in scenario.deliveries for f in d.facts)
