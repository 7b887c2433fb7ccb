"""The scenario itself, without services: valid master data, deterministic inputs, inputs
the adapters read as the scenario says, an accounting oracle that follows the documented
policy, and a verifier that notices a single cent."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from carebus_billing_adapter.adapters.dft_events import dft_events
from carebus_billing_adapter.adapters.hl7_dft import map_dft
from carebus_billing_adapter.adapters.x12 import RemittanceRejected, parse_835
from carebus_billing_adapter.domain.remittance_events import RemittanceContext, remittance_events
from carebus_contracts import billing as b
from carebus_scenario import model, policy
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.network import UNKNOWN_PAYER_EDI, UNKNOWN_PLAN_CODE
from carebus_scenario.npi import check_digit, is_valid
from carebus_scenario.observe import Observation
from carebus_scenario.oracle import Balance, expect
from carebus_scenario.verify import differences
from carebus_scheduling_adapter.adapters.hl7_siu import map_siu
from carebus_scheduling_adapter.adapters.hl7_siu_contract import to_contract
from carebus_shared.hl7 import Hl7Error

NOW = dt.datetime(2025, 3, 10, 23, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(SMALL)


def test_npis_carry_the_luhn_check_digit_over_prefix_80840(scenario: Scenario) -> None:
    assert check_digit("123456789") == "3"  # CMS's published example, 1234567893
    assert is_valid("1234567893")
    assert not is_valid("1234567890")
    npis = [p.npi for s in scenario.network.sites for p in [*s.providers, *s.retired]]
    assert all(is_valid(n) for n in npis)
    assert len(set(npis)) == len(npis)


def test_the_same_seed_gives_the_same_inputs_and_another_seed_other_ones() -> None:
    first, again = generate(SMALL), generate(SMALL)
    assert [d.payload for d in first.deliveries] == [d.payload for d in again.deliveries]
    other = generate(SMALL.with_(seed=SMALL.seed + 1))
    assert {d.payload for d in other.deliveries}.isdisjoint(d.payload for d in first.deliveries)


def test_each_appointment_keeps_one_lane_and_its_order(scenario: Scenario) -> None:
    lanes: dict[str, set[str]] = {}
    for delivery in scenario.deliveries:
        for fact in delivery.facts:
            if isinstance(fact, model.AppointmentFact):
                lanes.setdefault(fact.appointment_id, set()).add(delivery.lane)
    assert all(len(found) == 1 for found in lanes.values())


CONTEXT = RemittanceContext(site="CBO", source_system="x12-835", timezone=dt.UTC, recorded_at=NOW)


def _check_with_the_adapter(d: model.Delivery) -> None:
    """Run the adapter's pure mapping on one input and compare with the scenario's facts."""
    if d.channel == model.SIU:
        event = to_contract(map_siu(d.payload, default_tz="UTC"), recorded_at=NOW)
        (fact,) = d.facts
        assert isinstance(fact, model.AppointmentFact)
        appt = getattr(event, "appointment")  # noqa: B009 - any appointment event
        assert (event.event_type, appt.status.value, event.entity_version) == (
            f"scheduling.appointment.{fact.event}", fact.status, fact.version,
        ), d.label  # fmt: skip
        assert (appt.provider_code, appt.service_code, event.site) == (
            fact.provider_code, fact.service_code, fact.site,
        ), d.label  # fmt: skip
    elif d.channel == model.DFT:
        lines = map_dft(d.payload, default_tz="UTC", default_currency="USD")
        events = dft_events(lines, default_site="_unknown", recorded_at=NOW)
        assert len(events) == len(d.facts), d.label
        for event, fact in zip(events, d.facts, strict=True):
            amount = getattr(event, "charge", event).amount.amount_minor
            assert amount == getattr(fact, "amount_minor"), d.label  # noqa: B009
    else:
        events = [e for r in parse_835(d.payload) for e in remittance_events(r, CONTEXT)]
        assert len(events) == len(d.facts), d.label
        money = (b.PaymentPosted, b.AdjustmentPosted)
        got = sorted(e.amount.amount_minor for e in events if isinstance(e, money))
        facts = (model.PaymentFact, model.AdjustmentFact)
        want = sorted(f.amount_minor for f in d.facts if isinstance(f, facts))
        assert got == want, d.label


def _refusal_of(d: model.Delivery) -> str | None:
    try:
        _check_with_the_adapter(d)
    except Hl7Error as exc:
        return exc.reason
    except RemittanceRejected as exc:
        return str(exc.rejection.issues[0].reason)
    return None


def test_hl7_and_835_inputs_are_what_the_adapters_make_of_them(scenario: Scenario) -> None:
    """The scenario's own model of each input against the adapters' pure mapping code."""
    checked: Counter[str] = Counter()
    channels = (model.SIU, model.DFT, model.X12_UPLOAD, model.X12_INBOX)
    for d in scenario.deliveries:
        if d.duplicate or d.channel not in channels:
            continue
        reason = _refusal_of(d)
        expected = d.refusal.reason if d.refusal else None
        assert reason == expected, d.label
        checked["refused" if reason else d.channel] += 1
    assert checked["siu"] > 100
    assert checked["dft"] > 30
    assert checked["835-upload"] >= 2
    assert checked["refused"] == sum(1 for d in scenario.deliveries if d.refusal)


def _net(lines: list[policy.Line]) -> dict[tuple[str, str], int]:
    found: Counter[tuple[str, str]] = Counter()
    for line in lines:
        sign = 1 if line.side == "debit" else -1
        found[(line.account, line.currency)] += sign * line.amount_minor
    return {k: v for k, v in found.items() if v}


def test_the_forecast_is_raised_then_released_and_counts_follow_the_transitions() -> None:
    booked = policy.appointment("booked", "booked", "none", "99213")
    assert _net(booked) == {
        ("9000", "XXX"): 1, ("9099", "XXX"): -1, ("9100", "USD"): 12500, ("9199", "USD"): -12500,
    }  # fmt: skip
    checked_in = policy.appointment("checked_in", "checked_in", "booked", "99213")
    completed = policy.appointment("completed", "completed", "checked_in", "99213")
    assert checked_in == []
    assert _net(booked + completed) == {
        ("9000", "XXX"): 1, ("9040", "XXX"): 1, ("9099", "XXX"): -2,
    }  # fmt: skip
    # Cancelled before anything was applied (a late booking is then stale): a count only.
    assert _net(policy.appointment("cancelled", "cancelled", "none", "99213")) == {
        ("9010", "XXX"): 1, ("9099", "XXX"): -1,
    }  # fmt: skip
    assert policy.expected_fee("97110") == policy.DEFAULT_FEE


def test_money_postings_follow_the_documented_accounts() -> None:
    charge = policy.charge(16500, self_pay=False, reversal=False)
    assert _net(charge) == {("1200", "USD"): 16500, ("4000", "USD"): -16500}
    assert _net(charge + policy.charge(16500, self_pay=False, reversal=True)) == {}
    assert _net(policy.charge(5000, self_pay=True, reversal=False)) == {
        ("1210", "USD"): 5000, ("4000", "USD"): -5000,
    }  # fmt: skip
    assert _net(policy.payment(2500, self_pay=True)) == {
        ("1010", "USD"): 2500, ("1210", "USD"): -2500,
    }  # fmt: skip
    take_back = policy.payment(-9000, self_pay=False)  # a claim reversal: the exact mirror
    assert _net(take_back) == {("1200", "USD"): 9000, ("1010", "USD"): -9000}
    assert _net(policy.adjustment("service_line", "CO", "45", 4000, self_pay=False)) == {
        ("4900", "USD"): 4000, ("1200", "USD"): -4000,
    }  # fmt: skip
    assert _net(policy.adjustment("service_line", "PR", "2", 900, self_pay=False)) == {
        ("1210", "USD"): 900, ("1200", "USD"): -900,
    }  # fmt: skip
    interest = policy.adjustment("provider", "OA", "L6", -327, self_pay=False)
    assert _net(interest) == {("1010", "USD"): 327, ("4700", "USD"): -327}
    assert _net(policy.claim("reversed")) == {("9320", "XXX"): 1, ("9099", "XXX"): -1}


def test_sending_an_input_twice_changes_nothing_the_oracle_expects(scenario: Scenario) -> None:
    once = Scenario(
        scenario.config, scenario.network, [d for d in scenario.deliveries if not d.duplicate]
    )
    assert len(once.deliveries) < len(scenario.deliveries)
    with_repeats, without = expect(scenario), expect(once)
    assert with_repeats.ledger == without.ledger
    assert with_repeats.exceptions == without.exceptions
    assert with_repeats.stream_events == without.stream_events


def test_a_late_update_is_stale_and_posts_nothing(scenario: Scenario) -> None:
    expected = expect(scenario)
    assert expected.outcomes["stale"] >= 1
    late = [d for d in scenario.deliveries if d.facts and d.channel == model.SIU]
    versions: dict[str, int] = {}
    stale = 0
    for delivery in late:
        fact = delivery.facts[0]
        assert isinstance(fact, model.AppointmentFact)
        if fact.version < versions.get(fact.appointment_id, 0):
            stale += 1
        versions[fact.appointment_id] = max(versions.get(fact.appointment_id, 0), fact.version)
    assert stale >= expected.outcomes["stale"]


def test_the_verifier_notices_one_cent_and_one_missing_exception(scenario: Scenario) -> None:
    expected = expect(scenario)
    observed = Observation(
        ledger={k: Balance(v.debit_minor, v.credit_minor) for k, v in expected.ledger.items()},
        entries=Counter(expected.journals),
        journals=Counter(expected.journals),
        sources=Counter(expected.journals),
        exceptions=Counter(expected.exceptions),
        quarantine=Counter(expected.quarantine),
        stream_messages=dict(expected.stream_events),
    )
    assert differences(expected, observed) == []
    key = next(k for k in observed.ledger if k[1] == "4000")
    observed.ledger[key].credit_minor += 1
    stage_reason = next(iter(observed.exceptions))
    observed.exceptions[stage_reason] -= 1
    found = differences(expected, observed)
    assert len(found) == 2
    assert f"ledger {key[0]} 4000 USD" in found[0]
    assert str(stage_reason) in found[1]


def test_each_sites_payer_receivable_is_its_open_claims_balance(scenario: Scenario) -> None:
    """Remittances are booked to their claim's site (docs/decisions/021), so after the day's
    835 files a site's payer receivable (1200) is what its claims still open were charged:
    a settled claim's payments and adjustments take off exactly what its charges put on.
    Counted here from the inputs alone: insured charges by encounter (the claim), and the
    claims an accepted file from a known payer settled."""
    expected = expect(scenario)
    facts = {f.key: f for d in scenario.deliveries if d.refusal is None for f in d.facts}
    insured: Counter[tuple[str, str]] = Counter()  # (site, claim) → net charges
    for f in facts.values():
        if isinstance(f, model.ChargeFact) and f.payer_code not in (None, UNKNOWN_PLAN_CODE):
            assert f.encounter_id is not None
            insured[(f.site, f.encounter_id)] += -f.amount_minor if f.reversal else f.amount_minor
    settled = {
        f.claim_id
        for f in facts.values()
        if isinstance(f, model.ClaimFact) and f.payer_code != UNKNOWN_PAYER_EDI
    }
    open_balance: Counter[str] = Counter()
    for (site, claim), amount in insured.items():
        if claim not in settled:
            open_balance[site] += amount
    receivable = {
        site: balance.net_minor
        for (site, account, _), balance in expected.ledger.items()
        if account == "1200"
    }
    assert settled
    assert len(open_balance) == SMALL.sites
    assert receivable == dict(open_balance)
    # What the billing office (the adapter's default site) still holds is no claim's: the
    # payer's provider-level interest (PLB), which names none.
    office = scenario.config.remittance_site
    assert office not in receivable
    assert expected.journals[office] == expected.rules["adjustment.PLB"]
