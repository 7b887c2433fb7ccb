"""Loop 2100 (CLP claim payment) and loop 2110 (SVC service line) of an 835.

Values are collected into mutable drafts while segments stream by; ``remittance_reader`` turns
them into the frozen domain model once the whole transaction has been read.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from carebus_billing_adapter.adapters.x12.element_values import ElementReader
from carebus_billing_adapter.adapters.x12.segments import Segment
from carebus_billing_adapter.domain.remittance import (
    AdjustmentGroup,
    ClaimStatus,
    PatientReference,
    ProcedureCode,
)
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

_Reason = RejectionReason
_CLAIM_STATUSES = frozenset(status.value for status in ClaimStatus)
_ADJUSTMENT_GROUPS = frozenset(group.value for group in AdjustmentGroup)
_CARC = re.compile(r"[A-Z0-9]{1,5}")
_NPI = re.compile(r"\d{10}")
# SVC01-1 product/service id qualifiers allowed by 835 4010 and 5010.
_PRODUCT_QUALIFIERS = frozenset({"AD", "ER", "HC", "HP", "IV", "N4", "N6", "NU", "UI", "WK", "ZZ"})
_CAS_TRIPLETS = 6


@dataclass(slots=True)
class AdjustmentDraft:
    group: str
    carc: str
    amount_minor: int
    quantity: Decimal | None


@dataclass(slots=True)
class ServiceLineDraft:
    segment: Segment
    procedure: ProcedureCode | None
    charge_minor: int | None
    paid_minor: int | None
    revenue_code: str | None
    units: Decimal | None
    service_date: dt.date | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    line_control_number: str | None = None
    adjustments: list[AdjustmentDraft] = field(default_factory=list)


@dataclass(slots=True)
class ClaimDraft:
    segment: Segment
    money_gaps_before: int  # unreadable amounts before the claim; more later taints it
    patient_control_number: str
    status: str | None
    charge_minor: int | None
    paid_minor: int | None
    patient_responsibility_minor: int | None
    claim_filing_indicator: str | None
    payer_claim_control_number: str | None
    patient: PatientReference | None = None
    rendering_provider_npi: str | None = None
    statement_from: dt.date | None = None
    statement_to: dt.date | None = None
    received_date: dt.date | None = None
    adjustments: list[AdjustmentDraft] = field(default_factory=list)
    lines: list[ServiceLineDraft] = field(default_factory=list)
    tainted: bool = False  # some value of this claim could not be read: skip its balancing


def read_clp(reader: ElementReader, segment: Segment) -> ClaimDraft:
    patient_control_number = reader.text(segment, 1, required=True) or ""
    reader.claim = patient_control_number or None
    return ClaimDraft(
        segment=segment,
        money_gaps_before=reader.money_gaps,
        patient_control_number=patient_control_number,
        status=reader.code(segment, 2, _CLAIM_STATUSES),
        charge_minor=reader.amount(segment, 3),
        paid_minor=reader.amount(segment, 4),
        patient_responsibility_minor=reader.amount(segment, 5, required=False),
        claim_filing_indicator=reader.text(segment, 6),
        payer_claim_control_number=reader.text(segment, 7),
    )


def read_cas(reader: ElementReader, segment: Segment) -> list[AdjustmentDraft]:
    """Up to six (reason, amount, quantity) triplets share the CAS01 group code."""
    group = reader.code(segment, 1, _ADJUSTMENT_GROUPS)
    adjustments = []
    for triplet in range(_CAS_TRIPLETS):
        reason_at, amount_at, quantity_at = 2 + 3 * triplet, 3 + 3 * triplet, 4 + 3 * triplet
        # The triplet's elements (elements[0] is CAS01); a slice past the end is empty.
        if not any(segment.elements[reason_at - 1 : quantity_at]):
            if triplet == 0:
                reader.text(segment, reason_at, required=True)
            continue
        carc = reader.text(segment, reason_at, required=True)
        amount = reader.amount(segment, amount_at)
        quantity = reader.quantity(segment, quantity_at)
        if carc is not None and not _CARC.fullmatch(carc):
            reader.issues.add(
                _Reason.INVALID_CODE,
                segment,
                "not a claim adjustment reason code",
                element=segment.element_name(reason_at),
                claim=reader.claim,
            )
        if group is not None and carc is not None and amount is not None:
            adjustments.append(AdjustmentDraft(group, carc, amount, quantity))
        else:
            reader.money_gaps += 1
    return adjustments


def read_nm1(reader: ElementReader, segment: Segment, claim: ClaimDraft) -> None:
    entity = segment.element(1)
    if entity == "QC":
        claim.patient = PatientReference(
            last_name=segment.element(3),
            first_name=segment.element(4) or None,
            id_qualifier=segment.element(8) or None,
            id=segment.element(9) or None,
        )
    elif entity == "82" and segment.element(8) == "XX":
        npi = reader.text(segment, 9, required=True)
        if npi is not None and not _NPI.fullmatch(npi):
            reader.issues.add(
                _Reason.INVALID_CODE,
                segment,
                "NPI is not 10 digits",
                element="NM109",
                claim=reader.claim,
            )
        claim.rendering_provider_npi = npi


def read_claim_dtm(reader: ElementReader, segment: Segment, claim: ClaimDraft) -> None:
    value = reader.date(segment, 2, required=True)
    qualifier = segment.element(1)
    if qualifier == "232":
        claim.statement_from = value
    elif qualifier == "233":
        claim.statement_to = value
    elif qualifier == "050":
        claim.received_date = value


def _procedure(reader: ElementReader, segment: Segment) -> ProcedureCode | None:
    components = reader.components(segment, 1)
    qualifier = components[0]
    code = components[1] if len(components) > 1 else ""

    def complain(element: str, detail: str) -> None:
        reader.issues.add(
            _Reason.INVALID_COMPOSITE, segment, detail, element=element, claim=reader.claim
        )

    if not qualifier:
        complain("SVC01-1", "required product/service id qualifier is missing")
        return None
    if qualifier not in _PRODUCT_QUALIFIERS:
        complain(
            "SVC01-1",
            "not a product/service id qualifier (is the declared component separator "
            "ISA16 the one used?)",
        )
        return None
    if not code:
        complain("SVC01-2", "the composite has no procedure code")
        return None
    return ProcedureCode(
        qualifier=qualifier, code=code, modifiers=[m for m in components[2:6] if m]
    )


def read_svc(reader: ElementReader, segment: Segment) -> ServiceLineDraft:
    return ServiceLineDraft(
        segment=segment,
        procedure=_procedure(reader, segment),
        charge_minor=reader.amount(segment, 2),
        paid_minor=reader.amount(segment, 3),
        revenue_code=reader.text(segment, 4),
        units=reader.quantity(segment, 5),
    )


def read_line_dtm(reader: ElementReader, segment: Segment, line: ServiceLineDraft) -> None:
    value = reader.date(segment, 2, required=True)
    qualifier = segment.element(1)
    if qualifier == "472":
        line.service_date = value
    elif qualifier == "150":
        line.period_start = value
    elif qualifier == "151":
        line.period_end = value
