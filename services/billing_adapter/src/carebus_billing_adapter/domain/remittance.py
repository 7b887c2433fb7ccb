"""Remittance advice (X12 835) as the billing adapter understands it.

Pure, immutable msgspec Structs. Every money figure is an ``int`` of minor units (cents), never a
float, and carries its sign: reversals (claim status 22) have negative charge and payment.
Identifiers (``*_id``) are deterministic, see ``remittance_ids``, so a redelivered file yields the
same ids and downstream publishing can de-duplicate on them.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import msgspec


class ClaimStatus(enum.StrEnum):
    """CLP02 claim status codes an 835 may carry."""

    PROCESSED_PRIMARY = "1"
    PROCESSED_SECONDARY = "2"
    PROCESSED_TERTIARY = "3"
    DENIED = "4"
    PROCESSED_PRIMARY_FORWARDED = "19"
    PROCESSED_SECONDARY_FORWARDED = "20"
    PROCESSED_TERTIARY_FORWARDED = "21"
    REVERSAL = "22"
    NOT_OUR_CLAIM_FORWARDED = "23"
    PREDETERMINATION = "25"


class AdjustmentGroup(enum.StrEnum):
    """CAS01 claim adjustment group codes (CR only exists in 4010 but is still tolerated)."""

    CONTRACTUAL_OBLIGATION = "CO"
    CORRECTION_REVERSAL = "CR"
    OTHER_ADJUSTMENT = "OA"
    PAYER_INITIATED_REDUCTION = "PI"
    PATIENT_RESPONSIBILITY = "PR"


class Payer(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    # Payer identification: REF*2U, else N1*PR04, else TRN03 (originating company id).
    id: str | None


class Payee(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    npi: str | None
    tin: str | None


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: str
    amount_minor: int  # BPR02, negated when BPR03 says debit
    currency: str = "USD"
    handling_code: str  # BPR01: I remittance only, C payment + remittance, H notification, ...
    method: str  # BPR04: ACH, CHK, BOP, FWT, NON
    trace_number: str  # TRN02: check or EFT trace number
    originator_id: str | None  # TRN03
    date: dt.date  # BPR16: check issue / EFT effective date
    production_date: dt.date | None  # DTM*405


class Adjustment(msgspec.Struct, frozen=True, kw_only=True):
    adjustment_id: str
    group: AdjustmentGroup
    carc: str  # claim adjustment reason code
    amount_minor: int  # positive reduces the payment, negative increases it
    quantity: Decimal | None = None


class ProcedureCode(msgspec.Struct, frozen=True, kw_only=True):
    qualifier: str  # SVC01-1: HC (CPT/HCPCS), NU (revenue), N4 (NDC), ...
    code: str
    modifiers: list[str] = msgspec.field(default_factory=list)


class ServiceLine(msgspec.Struct, frozen=True, kw_only=True):
    service_line_id: str
    procedure: ProcedureCode
    charge_minor: int  # SVC02
    paid_minor: int  # SVC03
    revenue_code: str | None = None  # SVC04
    units: Decimal | None = None  # SVC05
    service_date: dt.date | None = None  # DTM*472
    period_start: dt.date | None = None  # DTM*150
    period_end: dt.date | None = None  # DTM*151
    line_control_number: str | None = None  # REF*6R, echoes the provider's 837 line id
    adjustments: list[Adjustment] = msgspec.field(default_factory=list)


class PatientReference(msgspec.Struct, frozen=True, kw_only=True):
    last_name: str
    first_name: str | None
    id_qualifier: str | None  # NM108: MI member id, HN HIC number, 34 SSN, ...
    id: str | None


class ClaimPayment(msgspec.Struct, frozen=True, kw_only=True):
    claim_payment_id: str
    patient_control_number: str  # CLP01: the provider's own claim id
    payer_claim_control_number: str | None  # CLP07
    status: ClaimStatus
    charge_minor: int  # CLP03
    paid_minor: int  # CLP04
    patient_responsibility_minor: int | None  # CLP05
    claim_filing_indicator: str | None = None  # CLP06
    is_reversal: bool = False
    # A claim that directly follows the reversal of the same claim is its correction.
    is_correction: bool = False
    patient: PatientReference | None = None
    rendering_provider_npi: str | None = None
    statement_from: dt.date | None = None  # DTM*232
    statement_to: dt.date | None = None  # DTM*233
    received_date: dt.date | None = None  # DTM*050
    adjustments: list[Adjustment] = msgspec.field(default_factory=list)  # claim-level CAS
    service_lines: list[ServiceLine] = msgspec.field(default_factory=list)


class ProviderAdjustment(msgspec.Struct, frozen=True, kw_only=True):
    provider_adjustment_id: str
    provider_id: str  # PLB01
    fiscal_period_date: dt.date  # PLB02
    reason_code: str  # PLB03-1 and following pairs: WO, CS, L6, 72, ...
    reference: str | None  # PLB03-2
    amount_minor: int  # positive reduces the payment


class Remittance(msgspec.Struct, frozen=True, kw_only=True):
    """One 835 transaction set: one payment and the claims it settles."""

    sender_id: str | None  # ISA06 (GS02 when the file has no ISA)
    receiver_id: str | None  # ISA08 (GS03 when the file has no ISA)
    interchange_control_number: str | None  # ISA13
    group_control_number: str | None  # GS06
    transaction_control_number: str  # ST02
    implementation_version: str | None  # ST03 or GS08, e.g. 005010X221A1
    payment: Payment
    payer: Payer
    payee: Payee
    claims: list[ClaimPayment]
    provider_adjustments: list[ProviderAdjustment]
    file_digest: str  # sha256 of the normalised interchange, same for every transaction in it
