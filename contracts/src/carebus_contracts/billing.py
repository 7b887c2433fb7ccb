"""Billing domain: charges, payments, adjustments and claim adjudications.

Amounts are :class:`~carebus_contracts.envelope.Money` (integer minor units + ISO 4217
currency).  ``billing.claim.adjudicated`` ships in two majors: v2 groups the claim totals
and adds service-line detail; the v1→v2 upcaster lives at the bottom of this module.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from carebus_contracts.envelope import (
    Contract,
    Event,
    Money,
    NonEmptyStr,
    SchemaVersion,
    envelope_of,
)
from carebus_contracts.upcasting import upcaster


class CarcGroup(enum.StrEnum):
    """X12 CAS01 claim adjustment group codes."""

    CONTRACTUAL = "CO"
    CORRECTION = "CR"
    OTHER = "OA"
    PAYER_INITIATED = "PI"
    PATIENT_RESPONSIBILITY = "PR"


class AdjustmentScope(enum.StrEnum):
    """What an adjustment applies to (``AdjustmentPosted.scope``, added in 1.1)."""

    SERVICE_LINE = "service_line"
    """X12 835 loop 2110 CAS: one service line of a claim."""
    CLAIM = "claim"
    """X12 835 loop 2100 CAS: the claim as a whole."""
    PROVIDER = "provider"
    """X12 835 PLB: provider-level, not tied to one claim (interest, offsets, withholds)."""
    ACCOUNT = "account"
    """A patient-account adjustment posted by the billing system (HL7 FT1 type AJ)."""


class ClaimStatus(enum.StrEnum):
    PAID = "paid"
    DENIED = "denied"
    REVERSED = "reversed"


class PaymentMethod(enum.StrEnum):
    EFT = "eft"
    CHECK = "check"
    CARD = "card"
    CASH = "cash"
    OTHER = "other"


class Charge(Contract, frozen=True, kw_only=True):
    charge_id: NonEmptyStr
    patient_ref: NonEmptyStr
    encounter_id: str | None = None
    appointment_id: str | None = None
    """Links the charge to the scheduling appointment when the source knows it."""
    service_code: NonEmptyStr
    """CPT or HCPCS code as billed."""
    modifiers: tuple[str, ...] = ()
    units: Annotated[int, msgspec.Meta(ge=1)]
    amount: Money
    """Extended amount for all units."""
    service_date: dt.date
    performing_provider_code: str | None = None
    department_code: str | None = None
    location_code: str | None = None
    payer_code: str | None = None


class ChargePosted(Event, tag="billing.charge.posted", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    charge: Charge

    @property
    def partition_key(self) -> str:
        """The claim (encounter) the charge is on: the validator books the claim's
        remittances by its charges, so they share a partition (docs/decisions/030)."""
        return self.charge.encounter_id or self.entity_key


class ChargeReversed(Event, tag="billing.charge.reversed", frozen=True, kw_only=True):
    """Reverses an earlier charge in full; ``charge`` repeats what is being reversed."""

    schema_version: SchemaVersion = "1.0"
    charge: Charge
    reversed_charge_id: NonEmptyStr
    reason: str | None = None

    @property
    def partition_key(self) -> str:
        """The claim (encounter) the charge is on: the validator books the claim's
        remittances by its charges, so they share a partition (docs/decisions/030)."""
        return self.charge.encounter_id or self.entity_key


class PaymentPosted(Event, tag="billing.payment.posted", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.2"
    payment_id: NonEmptyStr
    payer_code: str | None = None
    """None for a patient (self-pay) payment."""
    patient_ref: str | None = None
    claim_id: str | None = None
    amount: Money
    received_on: dt.date
    reference: str | None = None
    """Check or EFT trace number."""
    method: PaymentMethod | None = None
    """Added in 1.1."""
    payee_npi: str | None = None
    """Added in 1.2: the NPI of the payee the remittance paid (X12 835 N1*PE), when it says;
    the validator books a claim it does not know by the payee's location (docs/decisions/021)."""

    @property
    def partition_key(self) -> str:
        """The claim it names, beside the claim's charges (docs/decisions/030)."""
        return self.claim_id or self.entity_key


class AdjustmentPosted(Event, tag="billing.adjustment.posted", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.2"
    adjustment_id: NonEmptyStr
    claim_id: str | None = None
    charge_id: str | None = None
    payer_code: str | None = None
    group_code: CarcGroup
    reason_code: NonEmptyStr
    """CARC code, e.g. "45"."""
    remark_codes: tuple[str, ...] = ()
    """RARC codes, e.g. ["N130"]."""
    amount: Money
    """Positive reduces the balance; negative increases it (X12 CAS semantics)."""
    scope: AdjustmentScope | None = None
    """Added in 1.1. For PROVIDER (X12 PLB) ``group_code`` is OA and ``reason_code`` is the
    PLB adjustment reason (e.g. "L6" interest, "WO" overpayment recovery), not a CARC."""
    quantity: int | None = None
    """Added in 1.1: whole units the adjustment covers (X12 CAS04), when the source says."""
    reference: str | None = None
    """Added in 1.1: the source's reference for the adjustment (X12 PLB03-2)."""
    payee_npi: str | None = None
    """Added in 1.2: the NPI of the payee the remittance paid (X12 835 N1*PE), when it says."""

    @property
    def partition_key(self) -> str:
        """The claim it names, beside the claim's charges (docs/decisions/030)."""
        return self.claim_id or self.entity_key


class ClaimAdjustment(Contract, frozen=True, kw_only=True):
    group_code: CarcGroup
    reason_code: NonEmptyStr
    amount: Money


class ClaimAdjudicated(Event, tag="billing.claim.adjudicated", frozen=True, kw_only=True):
    """v1: claim-level amounts only. Superseded by :class:`ClaimAdjudicatedV2`."""

    schema_version: SchemaVersion = "1.0"
    claim_id: NonEmptyStr
    payer_code: NonEmptyStr
    payer_claim_id: str | None = None
    status: ClaimStatus
    billed: Money
    paid: Money
    patient_responsibility: Money | None = None
    adjudicated_on: dt.date
    adjustments: tuple[ClaimAdjustment, ...] = ()
    payment_reference: str | None = None

    @property
    def partition_key(self) -> str:
        """The claim it names, beside the claim's charges (docs/decisions/030)."""
        return self.claim_id or self.entity_key


class ClaimTotals(Contract, frozen=True, kw_only=True):
    billed: Money
    paid: Money
    patient_responsibility: Money | None = None


class ServiceLineAdjudication(Contract, frozen=True, kw_only=True):
    line_number: Annotated[int, msgspec.Meta(ge=1)]
    service_code: NonEmptyStr
    units: Annotated[int, msgspec.Meta(ge=1)]
    billed: Money
    paid: Money
    charge_id: str | None = None
    adjustments: tuple[ClaimAdjustment, ...] = ()


class ClaimAdjudicatedV2(Event, tag="billing.claim.adjudicated", frozen=True, kw_only=True):
    """v2: amounts grouped in ``totals`` (a rename on the wire, hence a new major) and
    per-service-line adjudication (empty when upcast from v1, which had none)."""

    schema_version: SchemaVersion = "2.1"
    claim_id: NonEmptyStr
    payer_code: NonEmptyStr
    payer_claim_id: str | None = None
    status: ClaimStatus
    totals: ClaimTotals
    adjudicated_on: dt.date
    claim_adjustments: tuple[ClaimAdjustment, ...] = ()
    service_lines: tuple[ServiceLineAdjudication, ...] = ()
    payment_reference: str | None = None
    payee_npi: str | None = None
    """Added in 2.1: the NPI of the payee the remittance paid (X12 835 N1*PE), when it says."""

    @property
    def partition_key(self) -> str:
        """The claim it names, beside the claim's charges (docs/decisions/030)."""
        return self.claim_id or self.entity_key


@upcaster(ClaimAdjudicated, ClaimAdjudicatedV2)
def _claim_adjudicated_v1_to_v2(old: ClaimAdjudicated) -> ClaimAdjudicatedV2:
    return ClaimAdjudicatedV2(
        **envelope_of(old),
        claim_id=old.claim_id,
        payer_code=old.payer_code,
        payer_claim_id=old.payer_claim_id,
        status=old.status,
        totals=ClaimTotals(
            billed=old.billed, paid=old.paid, patient_responsibility=old.patient_responsibility
        ),
        adjudicated_on=old.adjudicated_on,
        claim_adjustments=old.adjustments,
        payment_reference=old.payment_reference,
    )


BILLING_EVENTS: tuple[type[Event], ...] = (
    ChargePosted,
    ChargeReversed,
    PaymentPosted,
    AdjustmentPosted,
    ClaimAdjudicated,
    ClaimAdjudicatedV2,
)
