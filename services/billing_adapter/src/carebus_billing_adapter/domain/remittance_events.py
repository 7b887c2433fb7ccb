"""A balanced remittance → the canonical billing events it posts. Pure: no I/O, no clock.

Per claim (CLP): one ``billing.claim.adjudicated`` (current major, v2) with its service lines,
one ``billing.payment.posted`` for CLP04 (skipped when the claim pays nothing), and one
``billing.adjustment.posted`` per CAS adjustment (claim or service line). Per PLB adjustment:
one ``billing.adjustment.posted`` with scope ``provider``. So, over a file, the posted payments
less the provider-level adjustments equal BPR02, the file's own total.

Reversals (CLP02 = 22) keep the file's signs: negative charge, payment and adjustments, status
``reversed``. A correction that follows it is an ordinary claim with a newer ``entity_version``.

Ids come from ``remittance_ids`` (control numbers, sender, claim and line positions), so the
same file always yields the same event ids, which JetStream de-duplicates on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Final

import msgspec

from carebus_billing_adapter.domain import remittance_ids as ids
from carebus_billing_adapter.domain.remittance import (
    Adjustment,
    ClaimPayment,
    ClaimStatus,
    ProviderAdjustment,
    Remittance,
    ServiceLine,
)
from carebus_contracts import billing as b
from carebus_contracts.envelope import Event, Money

_STATUS: Final[dict[ClaimStatus, b.ClaimStatus]] = {
    ClaimStatus.DENIED: b.ClaimStatus.DENIED,
    # The payer forwarded the claim elsewhere and pays nothing on it.
    ClaimStatus.NOT_OUR_CLAIM_FORWARDED: b.ClaimStatus.DENIED,
    ClaimStatus.REVERSAL: b.ClaimStatus.REVERSED,
}
# BPR04 payment method → contract method.
_METHOD: Final[dict[str, b.PaymentMethod]] = {
    "ACH": b.PaymentMethod.EFT,
    "FWT": b.PaymentMethod.EFT,
    "CHK": b.PaymentMethod.CHECK,
    "BOP": b.PaymentMethod.OTHER,
    "NON": b.PaymentMethod.OTHER,
}
UNKNOWN_SERVICE_CODE: Final = "UNKNOWN"
UNKNOWN_PAYER: Final = "UNKNOWN"
# Positions in one file stay far below this; it orders claims within one payment date.
_POSITIONS_PER_DAY: Final = 100_000


class RemittanceContext(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    source_system: str
    timezone: dt.tzinfo
    recorded_at: dt.datetime
    currency: str = "USD"


class _Mapper:
    def __init__(self, remittance: Remittance, context: RemittanceContext) -> None:
        self.remittance = remittance
        self.context = context
        payment = remittance.payment
        # The contract needs a payer code: the payer id, else its name (N1*PR02 is mandatory).
        self.payer_code = remittance.payer.id or remittance.payer.name or UNKNOWN_PAYER
        # The payee's NPI (N1*PE XX): the validator's fallback for a claim it does not know.
        self.payee_npi = remittance.payee.npi or None
        self.adjudicated_on = payment.production_date or payment.date
        self.occurred_at = dt.datetime.combine(
            self.adjudicated_on, dt.time(), tzinfo=context.timezone
        )
        self.currency = payment.currency or context.currency
        # Later payment dates are newer; within one date, later positions in the file are
        # newer (a correction follows the reversal it corrects).
        self.version_base = int(self.adjudicated_on.strftime("%Y%m%d")) * _POSITIONS_PER_DAY

    def money(self, amount_minor: int) -> Money:
        return Money(amount_minor=amount_minor, currency=self.currency)

    def envelope(
        self, event_type: str, part_id: str, entity_key: str, position: int
    ) -> dict[str, Any]:
        version = self.version_base + position
        return {
            "event_id": ids.event_id(event_type, part_id),
            "occurred_at": self.occurred_at,
            "recorded_at": self.context.recorded_at,
            "source_system": self.context.source_system,
            "site": self.context.site,
            "correlation_id": self.remittance.payment.payment_id,
            "entity_key": entity_key,
            "entity_version": version,
        }

    def claim_adjustment(self, adjustment: Adjustment) -> b.ClaimAdjustment:
        return b.ClaimAdjustment(
            group_code=b.CarcGroup(adjustment.group.value),
            reason_code=adjustment.carc,
            amount=self.money(adjustment.amount_minor),
        )

    def service_line(self, number: int, line: ServiceLine) -> b.ServiceLineAdjudication:
        return b.ServiceLineAdjudication(
            line_number=number,
            service_code=line.procedure.code or UNKNOWN_SERVICE_CODE,
            units=contract_units(line.units),
            billed=self.money(line.charge_minor),
            paid=self.money(line.paid_minor),
            charge_id=line.line_control_number,
            adjustments=tuple(self.claim_adjustment(a) for a in line.adjustments),
        )

    def claim_events(self, position: int, claim: ClaimPayment) -> list[Event]:
        key = claim.patient_control_number
        part = claim.claim_payment_id
        responsibility = claim.patient_responsibility_minor
        events: list[Event] = [
            b.ClaimAdjudicatedV2(
                **self.envelope("billing.claim.adjudicated", part, key, position),
                claim_id=key,
                payer_code=self.payer_code,
                payer_claim_id=claim.payer_claim_control_number,
                status=_STATUS.get(claim.status, b.ClaimStatus.PAID),
                totals=b.ClaimTotals(
                    billed=self.money(claim.charge_minor),
                    paid=self.money(claim.paid_minor),
                    patient_responsibility=None
                    if responsibility is None
                    else self.money(responsibility),
                ),
                adjudicated_on=self.adjudicated_on,
                claim_adjustments=tuple(self.claim_adjustment(a) for a in claim.adjustments),
                service_lines=tuple(
                    self.service_line(n, line) for n, line in enumerate(claim.service_lines, 1)
                ),
                payment_reference=self.remittance.payment.trace_number or None,
                payee_npi=self.payee_npi,
            )
        ]
        if claim.paid_minor != 0:
            payment_id = ids.event_id("claim_payment", part)
            events.append(
                b.PaymentPosted(
                    **self.envelope("billing.payment.posted", part, payment_id, position),
                    payment_id=payment_id,
                    payer_code=self.payer_code,
                    claim_id=key,
                    amount=self.money(claim.paid_minor),
                    received_on=self.remittance.payment.date,
                    reference=self.remittance.payment.trace_number or None,
                    method=_METHOD.get(self.remittance.payment.method),
                    payee_npi=self.payee_npi,
                )
            )
        events += [
            self.adjustment(position, claim, None, adjustment) for adjustment in claim.adjustments
        ]
        events += [
            self.adjustment(position, claim, line, adjustment)
            for line in claim.service_lines
            for adjustment in line.adjustments
        ]
        return events

    def adjustment(
        self, position: int, claim: ClaimPayment, line: ServiceLine | None, adjustment: Adjustment
    ) -> Event:
        part = adjustment.adjustment_id
        return b.AdjustmentPosted(
            **self.envelope("billing.adjustment.posted", part, part, position),
            adjustment_id=part,
            claim_id=claim.patient_control_number,
            charge_id=line.line_control_number if line else None,
            payer_code=self.payer_code,
            group_code=b.CarcGroup(adjustment.group.value),
            reason_code=adjustment.carc,
            amount=self.money(adjustment.amount_minor),
            scope=b.AdjustmentScope.SERVICE_LINE if line else b.AdjustmentScope.CLAIM,
            quantity=whole_quantity(adjustment.quantity),
            payee_npi=self.payee_npi,
        )

    def provider_adjustment(self, position: int, plb: ProviderAdjustment) -> Event:
        part = plb.provider_adjustment_id
        return b.AdjustmentPosted(
            **self.envelope("billing.adjustment.posted", part, part, position),
            adjustment_id=part,
            payer_code=self.payer_code,
            group_code=b.CarcGroup.OTHER,
            reason_code=plb.reason_code,
            amount=self.money(plb.amount_minor),
            scope=b.AdjustmentScope.PROVIDER,
            reference=plb.reference,
            payee_npi=self.payee_npi,
        )

    def chunks(self, claims_per_chunk: int) -> Iterator[list[Event]]:
        claims = self.remittance.claims
        out: list[Event] = []
        for position, claim in enumerate(claims, 1):
            out += self.claim_events(position, claim)
            if position % claims_per_chunk == 0:
                yield out
                out = []
        for position, plb in enumerate(self.remittance.provider_adjustments, len(claims) + 1):
            out.append(self.provider_adjustment(position, plb))
        if out:
            yield out


def contract_units(units: Decimal | None) -> int:
    """SVC05 as the contract's whole units (>= 1): absent, zero or fractional units (e.g.
    anaesthesia minutes) become 1; the amounts stay exact, only the unit count is approximated."""
    if units is None or units < 1 or units != units.to_integral_value():
        return 1
    return int(units)


def whole_quantity(quantity: Decimal | None) -> int | None:
    """CAS04 as the contract's whole units; a fractional quantity is not carried (the amount
    is what gets posted)."""
    if quantity is None or quantity != quantity.to_integral_value():
        return None
    return int(quantity)


def remittance_events(remittance: Remittance, context: RemittanceContext) -> list[Event]:
    return [e for chunk in remittance_event_chunks(remittance, context) for e in chunk]


def remittance_event_chunks(
    remittance: Remittance, context: RemittanceContext, claims_per_chunk: int = 200
) -> Iterator[list[Event]]:
    """The same events in file order, a few claims at a time: a large file's events are
    made as they are published, never all held at once."""
    if claims_per_chunk < 1:
        raise ValueError("a chunk holds at least one claim")
    return _Mapper(remittance, context).chunks(claims_per_chunk)


def posted_total_minor(events: list[Event]) -> int:
    """Payments posted less provider-level adjustments: equals BPR02 of a balanced remittance."""
    total = 0
    for event in events:
        if isinstance(event, b.PaymentPosted):
            total += event.amount.amount_minor
        elif isinstance(event, b.AdjustmentPosted) and event.scope is b.AdjustmentScope.PROVIDER:
            total -= event.amount.amount_minor
    return total
