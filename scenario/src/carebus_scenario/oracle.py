"""What the ledger and the exception store must hold once a scenario has gone through.

Independent of the services' code: it models each stage from its documentation.

1. **Adapters** publish the facts of each accepted input; a fact seen before (same key: a
   repeat of the same source message) is dropped, as JetStream drops a repeated event id.
   A refused input leaves one exception record per distinct input and reason.
2. **Validator** resolves every code of a fact against the network's master data (the
   source's cross-reference, else the canonical id, else a provider's NPI; the record must
   be active). A failure parks the event and records one exception per failed reference; a
   later event of a parked entity (stream + entity key) is parked behind it. A charge it
   forwards puts its encounter (the claim the billing system submits) on the claim index,
   the first charge's site deciding; a payment, adjustment or adjudication naming a claim is
   booked to that claim's site, or parked for ``unknown_claim`` when no charge named it (the
   payee-NPI fallback needs a location cross-reference the network does not have; an event
   naming no claim keeps the site the adapter gave it).
3. **Mapper** fences appointments and claims by version (an older version after a newer one
   is stale: acknowledged, no journal) and maps the rest by :mod:`policy`.
4. **Poster** writes each journal once: the ledger is the sum of the journals' lines.

Besides the totals, :attr:`Expectation.events` says what each event must become (its journal's
lines, or why it has none) and :attr:`Expectation.refusals` which inputs must be kept as
refused: what the fault suite's checker classifies event by event (``checker.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field

from carebus_scenario import policy
from carebus_scenario.generator import Scenario
from carebus_scenario.model import (
    BILLING,
    SCHEDULING,
    AdjustmentFact,
    AppointmentFact,
    ChargeFact,
    ClaimFact,
    Fact,
    PaymentFact,
)
from carebus_scenario.network import DFT_SOURCE, SIU_SOURCE, X12_SOURCE, Network
from carebus_scenario.npi import is_valid as npi_is_valid
from carebus_shared.jetstream.topology import VALIDATOR_BILLING, VALIDATOR_SCHEDULING

LedgerKey = tuple[str, str, str]  # (site, account, currency)
ExceptionKey = tuple[str, str, str]  # (stage, category, reason)
# Stage names as the exception store holds them, "-" read as "_" (the adapters write the
# contract's Stage value, e.g. "billing_adapter"; the validator its consumer's name): see
# ``stage_name``.
VALIDATOR_STAGE = {
    SCHEDULING: VALIDATOR_SCHEDULING.replace("-", "_"),
    BILLING: VALIDATOR_BILLING.replace("-", "_"),
}
QUEUED_BEHIND = "queued_behind"
UNKNOWN_CLAIM = "unknown_claim"


def stage_name(stage: str) -> str:
    return stage.replace("-", "_")


@dataclass
class Balance:
    debit_minor: int = 0
    credit_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.debit_minor - self.credit_minor


JOURNAL, NO_JOURNAL, STALE, PARKED = "journal", "no_journal", "stale", "parked"


@dataclass(frozen=True)
class EventExpectation:
    """What one event (a fact, counted once per key) must become: a journal with ``lines``
    at ``site`` (the fact's own, or its claim's), no journal (``no_journal``, ``stale``) or
    parked for ``reason``."""

    fact: Fact
    outcome: str
    lines: tuple[policy.Line, ...] = ()
    reason: str | None = None
    booked_at: str | None = None  # the claim's site, when the fact is booked there

    @property
    def site(self) -> str:
        return self.booked_at or self.fact.site


@dataclass(frozen=True)
class RefusalExpectation:
    """An input the adapter must refuse and keep: its bytes' sha256 and the reason."""

    label: str
    digest: str
    stage: str
    category: str
    reason: str


@dataclass
class Expectation:
    ledger: dict[LedgerKey, Balance] = field(default_factory=dict)
    journals: Counter[str] = field(default_factory=Counter)  # per site
    exceptions: Counter[ExceptionKey] = field(default_factory=Counter)
    exceptions_by_site: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantine: Counter[str] = field(default_factory=Counter)  # parked events by first reason
    stream_events: Counter[str] = field(default_factory=Counter)  # distinct events per stream
    outcomes: Counter[str] = field(default_factory=Counter)  # journal, no_journal, stale, parked
    rules: Counter[str] = field(default_factory=Counter)  # journals by what they post
    events: dict[str, EventExpectation] = field(default_factory=dict)  # by fact key
    refusals: list[RefusalExpectation] = field(default_factory=list)

    @property
    def journal_count(self) -> int:
        return sum(self.journals.values())

    def add_lines(self, site: str, lines: list[policy.Line]) -> None:
        for line in lines:
            balance = self.ledger.setdefault((site, line.account, line.currency), Balance())
            if line.side == "debit":
                balance.debit_minor += line.amount_minor
            else:
                balance.credit_minor += line.amount_minor


@dataclass(frozen=True)
class _Failure:
    reason: str


class _MasterData:
    """The validator's resolution, modelled over the network the scenario loaded."""

    def __init__(self, network: Network) -> None:
        self.providers = network.provider_index()
        self.locations = {s.location_id for s in network.sites}
        self.departments = {d.department_id for s in network.sites for d in s.departments}
        self.services = {s.code for s in network.services}
        self.payers = {p.payer_id: p for p in network.payers}
        self.payer_xrefs = {(DFT_SOURCE, p.plan_code): p.payer_id for p in network.payers}
        self.payer_xrefs |= {(X12_SOURCE, p.edi_id): p.payer_id for p in network.payers}

    def provider(self, source: str, code: str) -> _Failure | None:
        found = None
        if source == SIU_SOURCE:
            found = self.providers.by_local.get(code)
        found = found or self.providers.by_id.get(code)
        if found is None and len(code) == 10 and code.isdigit():
            if not npi_is_valid(code):
                return _Failure("invalid_npi")
            found = self.providers.by_npi.get(code)
        if found is None:
            return _Failure("unknown_provider")
        return None if found.active else _Failure("inactive_provider")

    def payer_class(self, source: str, code: str | None) -> str | _Failure:
        if code is None:
            return "self_pay"
        payer_id = self.payer_xrefs.get((source, code), code)
        payer = self.payers.get(payer_id)
        if payer is None:
            return _Failure("unknown_payer")
        return payer.payer_class if payer.active else _Failure("inactive_payer")

    def check(self, kind: str, code: str, known: set[str]) -> _Failure | None:
        return None if code in known else _Failure(f"unknown_{kind}")

    def validate(self, fact: Fact) -> tuple[list[_Failure], bool]:
        """(failures, self_pay) of one fact."""
        failures: list[_Failure | None] = []
        self_pay = False
        match fact:
            case AppointmentFact():
                if fact.provider_code:
                    failures.append(self.provider(fact.source, fact.provider_code))
                failures.append(self.check("location", fact.location_code, self.locations))
                failures.append(self.check("department", fact.department_code, self.departments))
                failures.append(self.check("service", fact.service_code, self.services))
            case ChargeFact():
                failures.append(self.provider(fact.source, fact.provider_code))
                failures.append(self.check("location", fact.location_code, self.locations))
                failures.append(self.check("department", fact.department_code, self.departments))
                failures.append(self.check("service", fact.service_code, self.services))
                payer_class = self.payer_class(fact.source, fact.payer_code)
                failures.append(payer_class if isinstance(payer_class, _Failure) else None)
                self_pay = payer_class == "self_pay"
            case PaymentFact() | AdjustmentFact():
                payer_class = self.payer_class(fact.source, fact.payer_code)
                failures.append(payer_class if isinstance(payer_class, _Failure) else None)
                self_pay = payer_class == "self_pay"
            case ClaimFact():
                payer_class = self.payer_class(fact.source, fact.payer_code)
                failures.append(payer_class if isinstance(payer_class, _Failure) else None)
                failures += [self.check("service", c, self.services) for c in fact.service_codes]
        return [f for f in failures if f is not None], self_pay


def _journal_lines(fact: Fact, self_pay: bool, previous: str) -> list[policy.Line]:
    match fact:
        case AppointmentFact():
            return policy.appointment(fact.event, fact.status, previous, fact.service_code)
        case ChargeFact():
            return policy.charge(fact.amount_minor, self_pay=self_pay, reversal=fact.reversal)
        case PaymentFact():
            return policy.payment(fact.amount_minor, self_pay=self_pay)
        case AdjustmentFact():
            return policy.adjustment(
                fact.scope, fact.group, fact.reason, fact.amount_minor, self_pay=self_pay
            )
        case ClaimFact():
            return policy.claim(fact.status)
    raise TypeError(type(fact))


def _rule_label(fact: Fact) -> str:
    match fact:
        case AppointmentFact():
            return f"appointment.{fact.event}"
        case ChargeFact():
            return "charge.reversed" if fact.reversal else "charge.posted"
        case PaymentFact():
            return "payment.posted"
        case AdjustmentFact():
            return f"adjustment.{fact.group}" if fact.scope != "provider" else "adjustment.PLB"
        case ClaimFact():
            return f"claim.{fact.status}"
    raise TypeError(type(fact))


def expect(scenario: Scenario) -> Expectation:
    out = Expectation()
    masterdata = _MasterData(scenario.network)
    seen_facts: set[str] = set()
    refused: set[tuple[str, str]] = set()
    parked: set[tuple[str, str]] = set()
    fences: dict[tuple[str, str, str], tuple[int, str]] = {}  # → (version, status)
    claims: dict[str, str] = {}  # the claim index: claim id (encounter) → site
    for delivery in scenario.deliveries:
        if delivery.refusal is not None:
            digest = hashlib.sha256(delivery.payload).hexdigest()
            r = delivery.refusal
            if (digest, r.reason) not in refused:
                refused.add((digest, r.reason))
                out.refusals.append(
                    RefusalExpectation(delivery.label, digest, r.stage, r.category, r.reason)
                )
                out.exceptions[(r.stage, r.category, r.reason)] += 1
                out.exceptions_by_site[(r.site or "-", r.reason)] += 1
            continue
        for fact in delivery.facts:
            if fact.key in seen_facts:
                continue
            seen_facts.add(fact.key)
            out.stream_events[fact.stream] += 1
            _through_pipeline(out, masterdata, fact, parked, fences, claims)
    return out


def _through_pipeline(
    out: Expectation,
    masterdata: _MasterData,
    fact: Fact,
    parked: set[tuple[str, str]],
    fences: dict[tuple[str, str, str], tuple[int, str]],
    claims: dict[str, str],
) -> None:
    failures, self_pay = masterdata.validate(fact)
    claim_id = fact.claim_id if isinstance(fact, PaymentFact | AdjustmentFact | ClaimFact) else None
    booked_at = claims.get(claim_id) if claim_id is not None else None
    if claim_id is not None and booked_at is None:
        failures.append(_Failure(UNKNOWN_CLAIM))
    site = booked_at or fact.site
    entity = (fact.stream, fact.entity_key)
    if failures or entity in parked:
        parked.add(entity)
        reason = failures[0].reason if failures else QUEUED_BEHIND
        out.quarantine[reason] += 1
        out.outcomes[PARKED] += 1
        out.events[fact.key] = EventExpectation(fact, PARKED, reason=reason)
        for failure in failures:
            out.exceptions[(VALIDATOR_STAGE[fact.stream], "masterdata", failure.reason)] += 1
            out.exceptions_by_site[(fact.site, failure.reason)] += 1
        return
    if isinstance(fact, ChargeFact) and fact.encounter_id is not None:
        claims.setdefault(fact.encounter_id, fact.site)
    previous = "none"
    if isinstance(fact, AppointmentFact | ClaimFact):
        kind = "appointment" if isinstance(fact, AppointmentFact) else "claim"
        fence_key = (site, kind, fact.entity_key)
        last = fences.get(fence_key)
        if last is not None and fact.version <= last[0]:
            out.outcomes[STALE] += 1
            out.events[fact.key] = EventExpectation(fact, STALE)
            return
        previous = last[1] if last is not None else "none"
        fences[fence_key] = (fact.version, fact.status)
    lines = _journal_lines(fact, self_pay, previous)
    if not lines:
        out.outcomes[NO_JOURNAL] += 1
        out.events[fact.key] = EventExpectation(fact, NO_JOURNAL)
        return
    out.outcomes[JOURNAL] += 1
    out.events[fact.key] = EventExpectation(fact, JOURNAL, tuple(lines), booked_at=booked_at)
    out.journals[site] += 1
    out.rules[_rule_label(fact)] += 1
    out.add_lines(site, lines)


# -- what the outbound side must see (issue #19, docs/decisions/025) ------------------------
def delivered_facts(scenario: Scenario) -> list[Fact]:
    """Each fact of an accepted input, once (a repeat of the same source message dropped)."""
    seen: dict[str, Fact] = {}
    for delivery in scenario.deliveries:
        if delivery.refusal is None:
            for fact in delivery.facts:
                seen.setdefault(fact.key, fact)
    return list(seen.values())


def completed_without_charge(
    scenario: Scenario, completed_by: dt.datetime | None = None
) -> dict[str, str]:
    """Appointment id → site of every visit whose newest status is completed and whose
    charges the billing system never sent (or sent in a message that was refused): what
    the ops console must hold as open work items once the day has gone through.

    A visit parked in quarantine (its provider unknown or retired) counts: it was completed
    and no charge came, which is what the watch is for (docs/decisions/025, addendum). With
    ``completed_by``, only the visits completed by then: the console opens an item once its
    site's wait has passed since the completion, and a day played at today's date (the demo)
    has visits that complete later than the day is played."""
    return {
        appointment_id: fact.site
        for appointment_id, fact in uncharged_completions(scenario).items()
        if completed_by is None or fact.at <= completed_by
    }


def uncharged_completions(scenario: Scenario) -> dict[str, AppointmentFact]:
    """Appointment id → the completion of every visit :func:`completed_without_charge`
    names, whenever it completes (one pass over the delivered facts)."""
    newest: dict[str, AppointmentFact] = {}
    for fact in delivered_facts(scenario):
        if isinstance(fact, AppointmentFact):
            known = newest.get(fact.appointment_id)
            if known is None or fact.version > known.version:
                newest[fact.appointment_id] = fact
    charged = {
        d.label.split()[-1]
        for d in scenario.deliveries
        if d.label.startswith("DFT charges ") and d.refusal is None
    }
    return {
        appointment_id: fact
        for appointment_id, fact in newest.items()
        if fact.status == "completed" and appointment_id not in charged
    }


def ready_to_bill(expected: Expectation) -> Counter[str]:
    """Appointment id → completions the billing system must be told of: every completion
    event the validator forwards (not parked), each one message."""
    return Counter(
        e.fact.appointment_id
        for e in expected.events.values()
        if isinstance(e.fact, AppointmentFact) and e.fact.event == "completed"
        and e.outcome != PARKED
    )  # fmt: skip


def remittance_reports(expected: Expectation) -> int:
    """Payments, adjustments and claim adjudications the validator forwards: one status
    report back to the billing system each."""
    return sum(
        isinstance(e.fact, PaymentFact | AdjustmentFact | ClaimFact) and e.outcome != PARKED
        for e in expected.events.values()
    )
