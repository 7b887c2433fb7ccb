"""DFT FT1 lines (:class:`DftTransaction`) → canonical billing events. Pure.

FT1-6 decides the event: CG charge → ``billing.charge.posted``; CD credit →
``billing.charge.reversed`` of the charge named by FT1-2; PY payment → ``billing.payment.posted``;
AJ adjustment → ``billing.adjustment.posted`` (scope ``account``).

Signs. HL7 FT1 amounts are signed by their effect on the patient account: payments and
balance-reducing adjustments usually arrive negative. The contracts are explicit instead: a
payment amount is the money received (its magnitude is used), a reversal repeats the positive
charge it reverses, and an adjustment is positive when it reduces the balance (X12 CAS sense),
so the FT1 sign is flipped.

Ids: ``event_id = "hl7:" + line_id`` (sender, MSH-10, FT1-1), stable across re-sends, so
JetStream drops a retried message; ``entity_version`` is MSH-7 in milliseconds.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from carebus_billing_adapter.adapters.hl7_dft import DftTransaction
from carebus_contracts import billing as b
from carebus_contracts.envelope import Event, Money
from carebus_shared.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    ErrorLocation,
    Hl7MappingError,
)

# FT1-7 of an adjustment: "CO-45", "CO45", "CO:45" or "CO 45" name group and CARC.
_GROUP_AND_REASON: Final = re.compile(r"^(CO|CR|OA|PI|PR)[-: ]?([A-Z0-9]{1,5})$")


def event_id_for(line: DftTransaction) -> str:
    return f"hl7:{line.line_id}"


def _where(sequence: int, field: int) -> ErrorLocation:
    return ErrorLocation("FT1", field, sequence)


def _envelope(
    line: DftTransaction, default_site: str, recorded_at: datetime, key: str
) -> dict[str, Any]:
    sender = f"{line.source_system}^{line.site or ''}"
    return {
        "event_id": event_id_for(line),
        "occurred_at": line.transaction_date,
        "recorded_at": recorded_at,
        "source_system": line.source_system,
        "site": line.site or default_site,
        "correlation_id": f"hl7:{sender}:{line.control_id}",
        "entity_key": key,
        "entity_version": int(line.message_datetime.timestamp() * 1000),
    }


def _amount(line: DftTransaction, sequence: int) -> Money:
    """FT1-11 extended amount, else FT1-12 unit amount x FT1-10 quantity."""
    if line.extended_amount is not None:
        return line.extended_amount
    if line.unit_amount is not None:
        total = Decimal(line.unit_amount.amount_minor) * line.quantity
        if total != total.to_integral_value():
            raise Hl7MappingError(
                DATA_TYPE_ERROR, _where(sequence, 12), "unit amount x quantity is not exact"
            )
        return Money(amount_minor=int(total), currency=line.unit_amount.currency)
    raise Hl7MappingError(
        REQUIRED_FIELD_MISSING,
        _where(sequence, 11),
        f"a {line.transaction_type} needs an amount (FT1-11, or FT1-12 with FT1-10)",
    )


def _units(line: DftTransaction, sequence: int) -> int:
    quantity = abs(line.quantity)  # credits are often sent with a negative quantity
    if quantity < 1 or quantity != quantity.to_integral_value():
        raise Hl7MappingError(
            DATA_TYPE_ERROR,
            _where(sequence, 10),
            f"quantity {line.quantity} is not a whole number of units",
        )
    return int(quantity)


def _charge(line: DftTransaction, sequence: int, charge_id: str, *, magnitude: bool) -> b.Charge:
    code = line.procedure_code or line.transaction_code
    if code is None or not code.code:
        raise Hl7MappingError(
            REQUIRED_FIELD_MISSING,
            _where(sequence, 7),
            "no service code (FT1-25 procedure code or FT1-7 transaction code)",
        )
    amount = _amount(line, sequence)
    if magnitude:
        amount = Money(amount_minor=abs(amount.amount_minor), currency=amount.currency)
    performer = line.performing_providers[0] if line.performing_providers else None
    location = line.location
    return b.Charge(
        charge_id=charge_id,
        patient_ref=line.patient.id,
        encounter_id=line.visit_number,
        service_code=code.code,
        modifiers=line.procedure_modifiers,
        units=_units(line, sequence),
        amount=amount,
        service_date=line.transaction_date.date(),
        performing_provider_code=(performer.npi or performer.id) if performer else None,
        department_code=line.department.code if line.department else None,
        location_code=(location.point_of_care or location.facility) if location else None,
        payer_code=line.insurance_plan.code if line.insurance_plan else None,
    )


def _adjustment_codes(line: DftTransaction, sequence: int) -> tuple[b.CarcGroup, str]:
    code = line.transaction_code.code if line.transaction_code else None
    if not code:
        raise Hl7MappingError(
            REQUIRED_FIELD_MISSING, _where(sequence, 7), "an adjustment needs its reason (FT1-7)"
        )
    match = _GROUP_AND_REASON.match(code.upper())
    if match:
        return b.CarcGroup(match[1]), match[2]
    return b.CarcGroup.OTHER, code


def line_event(
    line: DftTransaction, sequence: int, *, default_site: str, recorded_at: datetime
) -> Event:
    """The event of one FT1 line; ``sequence`` is its position (FT1[n]) for error locations."""
    own_id = line.transaction_id or line.line_id
    env: dict[str, Any]
    if line.transaction_type == "charge":
        env = _envelope(line, default_site, recorded_at, own_id)
        return b.ChargePosted(**env, charge=_charge(line, sequence, own_id, magnitude=False))
    if line.transaction_type == "credit":
        if not line.transaction_id:
            raise Hl7MappingError(
                REQUIRED_FIELD_MISSING,
                _where(sequence, 2),
                "a credit must name the charge it reverses (FT1-2 transaction id)",
            )
        env = _envelope(line, default_site, recorded_at, line.transaction_id)
        return b.ChargeReversed(
            **env,
            charge=_charge(line, sequence, line.transaction_id, magnitude=True),
            reversed_charge_id=line.transaction_id,
            reason=line.description,
        )
    amount = _amount(line, sequence)
    payer = line.insurance_plan.code if line.insurance_plan else None
    env = _envelope(line, default_site, recorded_at, own_id)
    if line.transaction_type == "payment":
        return b.PaymentPosted(
            **env,
            payment_id=own_id,
            payer_code=payer,
            patient_ref=line.patient.id,
            amount=Money(amount_minor=abs(amount.amount_minor), currency=amount.currency),
            received_on=line.transaction_date.date(),
            reference=line.batch_id,
        )
    group, reason = _adjustment_codes(line, sequence)
    return b.AdjustmentPosted(
        **env,
        adjustment_id=own_id,
        payer_code=payer,
        group_code=group,
        reason_code=reason,
        amount=Money(amount_minor=-amount.amount_minor, currency=amount.currency),
        scope=b.AdjustmentScope.ACCOUNT,
    )


def dft_events(
    lines: list[DftTransaction], *, default_site: str, recorded_at: datetime
) -> list[Event]:
    """One event per FT1; raises :class:`Hl7MappingError` at the first line that cannot map."""
    return [
        line_event(line, n, default_site=default_site, recorded_at=recorded_at)
        for n, line in enumerate(lines, 1)
    ]
