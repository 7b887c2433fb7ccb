"""Freeze the drafts of one 835 transaction into the domain model, with deterministic ids."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from carebus_billing_adapter.adapters.x12.claim_reader import (
    AdjustmentDraft,
    ClaimDraft,
    ServiceLineDraft,
)
from carebus_billing_adapter.adapters.x12.envelope import TransactionSet
from carebus_billing_adapter.adapters.x12.segments import Segment
from carebus_billing_adapter.domain import remittance_ids as ids
from carebus_billing_adapter.domain.remittance import (
    Adjustment,
    AdjustmentGroup,
    ClaimPayment,
    ClaimStatus,
    Payee,
    Payer,
    Payment,
    ProcedureCode,
    ProviderAdjustment,
    Remittance,
    ServiceLine,
)

# Placeholders for values that failed to parse. They only ever reach a Remittance that is
# thrown away, because every failure is also logged as an issue that rejects the file.
_NO_DATE = dt.date(1900, 1, 1)
_NO_PROCEDURE = ProcedureCode(qualifier="", code="")


@dataclass(slots=True)
class PaymentDraft:
    handling_code: str | None = None
    amount_minor: int | None = None
    method: str | None = None
    date: dt.date | None = None
    trace_number: str | None = None
    originator_id: str | None = None
    production_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class ProviderAdjustmentDraft:
    provider_id: str
    fiscal_period_date: dt.date
    reason_code: str
    reference: str | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class EnvelopeKeys:
    sender_id: str | None
    receiver_id: str | None
    interchange_control_number: str | None
    group_control_number: str | None
    transaction_control_number: str
    implementation_version: str | None

    @classmethod
    def of(cls, transaction: TransactionSet) -> EnvelopeKeys:
        isa, gs, st = transaction.interchange_header, transaction.group_header, transaction.header

        def pick(segment: Segment | None, number: int) -> str | None:
            return segment.element(number).strip() or None if segment else None

        return cls(
            sender_id=pick(isa, 6) or pick(gs, 2),
            receiver_id=pick(isa, 8) or pick(gs, 3),
            interchange_control_number=pick(isa, 13),
            group_control_number=pick(gs, 6),
            transaction_control_number=st.element(2),
            implementation_version=pick(st, 3) or pick(gs, 8),
        )


def _adjustments(parent_id: str, drafts: list[AdjustmentDraft]) -> list[Adjustment]:
    return [
        Adjustment(
            adjustment_id=ids.adjustment_id(parent_id, position, draft.group, draft.carc),
            group=AdjustmentGroup(draft.group),
            carc=draft.carc,
            amount_minor=draft.amount_minor,
            quantity=draft.quantity,
        )
        for position, draft in enumerate(drafts, start=1)
    ]


def _service_line(claim_id: str, position: int, draft: ServiceLineDraft) -> ServiceLine:
    line_id = ids.service_line_id(claim_id, position)
    return ServiceLine(
        service_line_id=line_id,
        procedure=draft.procedure or _NO_PROCEDURE,
        charge_minor=draft.charge_minor or 0,
        paid_minor=draft.paid_minor or 0,
        revenue_code=draft.revenue_code,
        units=draft.units,
        service_date=draft.service_date,
        period_start=draft.period_start,
        period_end=draft.period_end,
        line_control_number=draft.line_control_number,
        adjustments=_adjustments(line_id, draft.adjustments),
    )


def _claims(payment_id: str, drafts: list[ClaimDraft]) -> list[ClaimPayment]:
    claims = []
    previous: ClaimDraft | None = None
    for position, draft in enumerate(drafts, start=1):
        claim_id = ids.claim_payment_id(
            payment_id, position, draft.patient_control_number, draft.payer_claim_control_number
        )
        is_reversal = draft.status == ClaimStatus.REVERSAL
        corrects_previous = (
            previous is not None
            and previous.status == ClaimStatus.REVERSAL
            and previous.patient_control_number == draft.patient_control_number
        )
        claims.append(
            ClaimPayment(
                claim_payment_id=claim_id,
                patient_control_number=draft.patient_control_number,
                payer_claim_control_number=draft.payer_claim_control_number,
                status=ClaimStatus(draft.status or ClaimStatus.PROCESSED_PRIMARY),
                charge_minor=draft.charge_minor or 0,
                paid_minor=draft.paid_minor or 0,
                patient_responsibility_minor=draft.patient_responsibility_minor,
                claim_filing_indicator=draft.claim_filing_indicator,
                is_reversal=is_reversal,
                is_correction=corrects_previous and not is_reversal,
                patient=draft.patient,
                rendering_provider_npi=draft.rendering_provider_npi,
                statement_from=draft.statement_from,
                statement_to=draft.statement_to,
                received_date=draft.received_date,
                adjustments=_adjustments(claim_id, draft.adjustments),
                service_lines=[
                    _service_line(claim_id, line_position, line)
                    for line_position, line in enumerate(draft.lines, start=1)
                ],
            )
        )
        previous = draft
    return claims


def build_remittance(
    *,
    keys: EnvelopeKeys,
    payment: PaymentDraft,
    payer: Payer,
    payee: Payee,
    claims: list[ClaimDraft],
    provider_adjustments: list[ProviderAdjustmentDraft],
    file_digest: str,
) -> Remittance:
    trace_number = payment.trace_number or ""
    payment_id = ids.payment_id(
        sender_id=keys.sender_id,
        interchange_control_number=keys.interchange_control_number,
        group_control_number=keys.group_control_number,
        transaction_control_number=keys.transaction_control_number,
        trace_number=trace_number,
    )
    return Remittance(
        sender_id=keys.sender_id,
        receiver_id=keys.receiver_id,
        interchange_control_number=keys.interchange_control_number,
        group_control_number=keys.group_control_number,
        transaction_control_number=keys.transaction_control_number,
        implementation_version=keys.implementation_version,
        payment=Payment(
            payment_id=payment_id,
            amount_minor=payment.amount_minor or 0,
            handling_code=payment.handling_code or "",
            method=payment.method or "",
            trace_number=trace_number,
            originator_id=payment.originator_id,
            date=payment.date or _NO_DATE,
            production_date=payment.production_date,
        ),
        payer=payer,
        payee=payee,
        claims=_claims(payment_id, drafts=claims),
        provider_adjustments=[
            ProviderAdjustment(
                provider_adjustment_id=ids.provider_adjustment_id(
                    payment_id, position, draft.reason_code
                ),
                provider_id=draft.provider_id,
                fiscal_period_date=draft.fiscal_period_date,
                reason_code=draft.reason_code,
                reference=draft.reference,
                amount_minor=draft.amount_minor,
            )
            for position, draft in enumerate(provider_adjustments, start=1)
        ],
        file_digest=file_digest,
    )
