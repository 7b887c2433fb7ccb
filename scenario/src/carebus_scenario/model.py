"""What the scenario sends and what each input must become, in the scenario's own terms.

A :class:`Delivery` is one input on one channel (an HL7 message, a FHIR request, a CSV file,
an 835 file). It carries the canonical events the adapter must publish for it (*facts*, in
the scenario's own model, not the contract classes) or the refusal it must end in. Facts
have a ``key``: a delivery sent twice carries the same keys, and the oracle counts a key once
(the adapters derive event ids from the source, and JetStream drops the repeat).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from carebus_scenario.network import Department, Provider, Site

SCHEDULING = "SCHEDULING"
BILLING = "BILLING"


@dataclass(frozen=True)
class AppointmentFact:
    key: str
    site: str
    source: str
    appointment_id: str
    event: str  # booked | rescheduled | modified | checked_in | completed | cancelled | no_show
    status: str  # booked | checked_in | completed | cancelled | no_show
    version: int
    provider_code: str | None
    location_code: str
    department_code: str
    service_code: str
    stream: str = SCHEDULING

    @property
    def entity_key(self) -> str:
        return self.appointment_id

    @property
    def at(self) -> dt.datetime:
        """When the step happened: the version is that instant in milliseconds, as the
        adapters read it from the input (the event's ``occurred_at``)."""
        return dt.datetime.fromtimestamp(self.version / 1000, dt.UTC)


@dataclass(frozen=True)
class ChargeFact:
    key: str
    site: str
    source: str
    charge_id: str
    amount_minor: int
    provider_code: str
    location_code: str
    department_code: str
    service_code: str
    payer_code: str | None
    reversal: bool = False
    encounter_id: str | None = None  # the visit number (PV1-19): the claim the charge is on
    stream: str = BILLING

    @property
    def entity_key(self) -> str:
        return self.charge_id


@dataclass(frozen=True)
class PaymentFact:
    key: str
    site: str
    source: str
    payment_id: str
    payer_code: str | None
    amount_minor: int  # signed: a payer's take-back (claim reversal) is negative
    claim_id: str | None = None  # the claim an 835 payment settles (CLP01)
    stream: str = BILLING

    @property
    def entity_key(self) -> str:
        return self.payment_id


@dataclass(frozen=True)
class AdjustmentFact:
    key: str
    site: str
    source: str
    adjustment_id: str
    payer_code: str | None
    group: str  # CARC group: CO, PR, OA, PI, CR
    reason: str  # CARC (or PLB reason for scope provider)
    amount_minor: int  # X12 CAS sense: positive reduces the balance
    scope: str  # claim | service_line | provider | account
    claim_id: str | None = None  # the claim of an 835 CAS (CLP01); None for a PLB
    stream: str = BILLING

    @property
    def entity_key(self) -> str:
        return self.adjustment_id


@dataclass(frozen=True)
class ClaimFact:
    key: str
    site: str
    source: str
    claim_id: str
    payer_code: str
    status: str  # paid | denied | reversed
    version: int
    service_codes: tuple[str, ...]
    stream: str = BILLING

    @property
    def entity_key(self) -> str:
        return self.claim_id


Fact = AppointmentFact | ChargeFact | PaymentFact | AdjustmentFact | ClaimFact


@dataclass(frozen=True)
class BilledClaim:
    """A claim of an earlier visit, as the billing system submitted it: one per visit, its id
    the visit number; an 835 of the day settles it."""

    claim_id: str
    site: Site
    dept: Department
    provider: Provider
    patient_ref: str
    plan_code: str
    served: dt.date
    codes: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """An input the adapter must refuse, keep in the exception store, and answer so."""

    stage: str  # scheduling_adapter | billing_adapter
    category: str
    reason: str
    site: str | None


# Channels.
SIU = "siu"
DFT = "dft"
FHIR = "fhir"
CSV = "csv"
X12_UPLOAD = "835-upload"
X12_INBOX = "835-inbox"


@dataclass
class Delivery:
    seq: int
    at: dt.datetime  # when the source system sends it (simulated clock)
    channel: str
    lane: str  # inputs of one lane are sent in order on one connection (one appointment's)
    payload: bytes
    facts: tuple[Fact, ...] = ()
    refusal: Refusal | None = None
    duplicate: bool = False  # a repeat of an earlier delivery (same event ids)
    label: str = ""  # what it is, for progress and failure messages (no patient data)
    # The charges of the earlier visits whose claims the day's 835 files settle: sent, and
    # answered, before anything of the day (the billing system posted them days ago).
    opening: bool = False
    # FHIR requests
    method: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def expected_answer(self) -> str:
        """The acknowledgement the sender must get back."""
        if self.channel in (SIU, DFT):
            if self.refusal is None:
                return "AA"
            return "AR" if self.refusal.reason in _AR_REASONS else "AE"
        if self.channel == FHIR:
            return "accepted" if self.refusal is None else "refused"
        if self.channel in (X12_UPLOAD, X12_INBOX):
            if self.refusal is not None:
                return "rejected"
            return "duplicate" if self.duplicate else "posted"
        return "imported"


_AR_REASONS = frozenset(
    {"parse_error", "unsupported_message_type", "unsupported_trigger_event", "unsupported_version"}
)
