"""HL7 v2 DFT^P03 / DFT^P11 → one :class:`DftTransaction` per FT1 segment.

Pure: no I/O, no clock.  Money is exact: FT1-11/FT1-12 decimal strings are read with
``Decimal`` and stored as integer minor units of an ISO 4217 currency (the CP/MO
denomination, else the caller's ``default_currency``); an amount with more decimals
than the currency has is rejected rather than rounded.  Signs are kept as sent.

Each FT1 gets ``line_id = "<MSH-3>^<MSH-4>:<MSH-10>:<FT1-1>"``: stable across re-sends of
the same message, so downstream de-duplication works, and unique within the message
(a repeated FT1-1 is rejected).  PID and PV1 give patient and visit context; Z-segments
are ignored.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from carebus_contracts.envelope import Money
from carebus_shared.hl7.datatypes import (
    CodedValue,
    LocationRef,
    MessageMeta,
    PatientRef,
    ProviderRef,
    coded,
    coded_at,
    loc,
    location_from_pl,
    message_meta,
    patient_from_pid,
    providers_at,
    timestamp_at,
)
from carebus_shared.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    ErrorLocation,
    Hl7MappingError,
)
from carebus_shared.hl7.message import Hl7Message, Segment, parse_message

__all__ = ["DftTransaction", "Hl7MappingError", "map_dft", "to_minor_units"]

SUPPORTED_TRIGGERS: Final = frozenset({"P03", "P11"})

# HL7 table 0017 transaction type → carebus kind.
TRANSACTION_TYPES: Final[dict[str, str]] = {
    "CG": "charge",
    "CD": "credit",
    "PY": "payment",
    "AJ": "adjustment",
}

# ISO 4217 currencies whose minor unit is not 2 digits (all others: 2).
_MINOR_DIGITS: Final[dict[str, int]] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_MAX_AMOUNT_DIGITS: Final = 15  # integer digits of an amount: below a quadrillion
_MAX_QUANTITY: Final = 999_999_999


class DftTransaction(msgspec.Struct, frozen=True, kw_only=True):
    """One FT1 financial transaction with its message and visit context."""

    line_id: str
    control_id: str
    message_datetime: datetime
    trigger_event: str
    source_system: str
    site: str | None
    set_id: int
    transaction_id: str | None
    batch_id: str | None
    transaction_type: str
    """charge | credit | payment | adjustment (FT1-6 CG/CD/PY/AJ)."""
    transaction_type_code: str
    transaction_date: datetime
    posting_date: datetime | None
    transaction_code: CodedValue | None
    description: str | None
    quantity: Decimal
    extended_amount: Money | None
    unit_amount: Money | None
    department: CodedValue | None
    location: LocationRef | None
    """FT1-16, else PV1-3."""
    insurance_plan: CodedValue | None
    diagnosis_codes: tuple[CodedValue, ...]
    performing_providers: tuple[ProviderRef, ...]
    ordering_providers: tuple[ProviderRef, ...]
    procedure_code: CodedValue | None
    procedure_modifiers: tuple[str, ...]
    patient: PatientRef
    visit_number: str | None
    patient_class: str | None


class _Message(msgspec.Struct, frozen=True):
    """What every FT1 line of one message shares, and the caller's defaults."""

    meta: MessageMeta
    sender: str
    """``<MSH-3>^<MSH-4>``, the start of each line id."""
    patient: PatientRef
    pv1: Segment | None
    default_tz: tzinfo | str
    default_currency: str


def map_dft(
    message: Hl7Message | bytes | str,
    *,
    default_tz: tzinfo | str,
    default_currency: str,
) -> list[DftTransaction]:
    """Map one DFT^P03/P11; raises :class:`Hl7MappingError` naming the first problem."""
    msg = message if isinstance(message, Hl7Message) else parse_message(message)
    _check_message_type(msg)
    if not _CURRENCY.match(default_currency):
        raise ValueError(f"default_currency must be ISO 4217, got {default_currency!r}")
    meta = message_meta(msg, default_tz)
    ft1s = msg.all("FT1")
    if not ft1s:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "FT1", "no FT1 segment")
    context = _Message(
        meta=meta,
        sender=f"{meta.source_system}^{meta.site or ''}",
        patient=patient_from_pid(msg),
        pv1=msg.segment("PV1"),
        default_tz=default_tz,
        default_currency=default_currency,
    )
    seen: set[int] = set()
    return [_transaction(ft1, _new_set_id(ft1, seen), context) for ft1 in ft1s]


def _check_message_type(msg: Hl7Message) -> None:
    if msg.message_code != "DFT":
        raise Hl7MappingError(
            UNSUPPORTED_MESSAGE_TYPE,
            "MSH-9",
            "message type is not DFT",
        )
    if msg.trigger_event not in SUPPORTED_TRIGGERS:
        raise Hl7MappingError(
            UNSUPPORTED_EVENT_CODE,
            "MSH-9.2",
            "DFT trigger event is not supported",
            value=msg.trigger_event,
        )


def _new_set_id(ft1: Segment, seen: set[int]) -> int:
    """FT1-1, unique within the message (it makes the line id)."""
    set_id = _set_id(ft1)
    if set_id in seen:
        raise Hl7MappingError(DATA_TYPE_ERROR, loc(ft1, 1), f"duplicate FT1 set id {set_id}")
    seen.add(set_id)
    return set_id


def _transaction(ft1: Segment, set_id: int, context: _Message) -> DftTransaction:
    type_code = _transaction_type(ft1)
    transaction_date = timestamp_at(ft1, 4, context.default_tz)
    if transaction_date is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, loc(ft1, 4), "no transaction date")
    meta, pv1 = context.meta, context.pv1
    return DftTransaction(
        line_id=f"{context.sender}:{meta.control_id}:{set_id}",
        control_id=meta.control_id,
        message_datetime=meta.message_datetime,
        trigger_event=meta.trigger_event,
        source_system=meta.source_system,
        site=meta.site,
        set_id=set_id,
        transaction_id=ft1.value(2),
        batch_id=ft1.value(3),
        transaction_type=TRANSACTION_TYPES[type_code],
        transaction_type_code=type_code,
        transaction_date=transaction_date,
        posting_date=timestamp_at(ft1, 5, context.default_tz),
        transaction_code=coded_at(ft1, 7),
        description=ft1.value(8, sub=None),
        quantity=_quantity(ft1),
        extended_amount=_money(ft1, 11, context.default_currency),
        unit_amount=_money(ft1, 12, context.default_currency),
        department=coded_at(ft1, 13),
        location=_location(ft1, pv1),
        insurance_plan=coded_at(ft1, 14),
        diagnosis_codes=tuple(c for c in (coded(f) for f in ft1.repetitions(19)) if c is not None),
        performing_providers=tuple(providers_at(ft1, 20, "performing")),
        ordering_providers=tuple(providers_at(ft1, 21, "ordering")),
        procedure_code=coded_at(ft1, 25),
        procedure_modifiers=tuple(m for m in (f.component(1) for f in ft1.repetitions(26)) if m),
        patient=context.patient,
        visit_number=pv1.value(19) if pv1 else None,
        patient_class=pv1.value(2) if pv1 else None,
    )


def _transaction_type(ft1: Segment) -> str:
    """FT1-6, upper case: one of :data:`TRANSACTION_TYPES`."""
    type_code = (ft1.value(6) or "").upper()
    if not type_code:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, loc(ft1, 6), "no transaction type")
    if type_code not in TRANSACTION_TYPES:
        raise Hl7MappingError(
            TABLE_VALUE_NOT_FOUND,
            loc(ft1, 6),
            "transaction type is not in table 0017 (CG, CD, PY, AJ)",
            value=type_code,
        )
    return type_code


def _location(ft1: Segment, pv1: Segment | None) -> LocationRef | None:
    """FT1-16, else PV1-3."""
    return location_from_pl(ft1.field(16), loc(ft1, 16)) or (
        location_from_pl(pv1.field(3), loc(pv1, 3)) if pv1 else None
    )


def _set_id(ft1: Segment) -> int:
    text = ft1.value(1)
    if text is None:
        return ft1.index  # FT1-1 is optional before v2.5: fall back to position
    try:
        return int(text)
    except ValueError as exc:
        raise Hl7MappingError(
            DATA_TYPE_ERROR, loc(ft1, 1), "set id is not a number", value=text
        ) from exc


def _quantity(ft1: Segment) -> Decimal:
    text = ft1.value(10)
    if text is None:
        return Decimal(1)
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise Hl7MappingError(
            DATA_TYPE_ERROR, loc(ft1, 10), "quantity is not a number", value=text
        ) from exc
    # NaN would fail every comparison later, and int() of 1E999999999 never finishes.
    if not value.is_finite() or value.copy_abs() > _MAX_QUANTITY:  # abs() would round
        raise Hl7MappingError(
            DATA_TYPE_ERROR, loc(ft1, 10), f"quantity is not a finite number up to {_MAX_QUANTITY}"
        )
    return value


def _money(ft1: Segment, n: int, default_currency: str) -> Money | None:
    """CP: price (MO = quantity&denomination)^price type^...; v2.3 senders also send NM."""
    amount = ft1.value(n, 1, 1)
    if amount is None:
        return None
    currency = (ft1.value(n, 1, 2) or default_currency).upper()
    where = ErrorLocation(ft1.name, n, ft1.index, 1)
    if not _CURRENCY.match(currency):
        raise Hl7MappingError(
            TABLE_VALUE_NOT_FOUND, where, "currency is not an ISO 4217 code", value=currency
        )
    return Money(amount_minor=to_minor_units(amount, currency, where), currency=currency)


def to_minor_units(amount: str, currency: str, where: ErrorLocation | str = "FT1") -> int:
    """``"12.30"`` USD → 1230; raises when the text is not an exact amount of ``currency``."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation as exc:
        raise Hl7MappingError(
            DATA_TYPE_ERROR, where, "amount is not a number", value=amount
        ) from exc
    if not value.is_finite():
        raise Hl7MappingError(DATA_TYPE_ERROR, where, "amount is not finite", value=amount)
    if value.adjusted() >= _MAX_AMOUNT_DIGITS:  # before scaleb() and int(): 1E999999999
        raise Hl7MappingError(
            DATA_TYPE_ERROR, where, f"amount is not below 10^{_MAX_AMOUNT_DIGITS}"
        )
    minor = value.scaleb(_MINOR_DIGITS.get(currency, 2))
    if minor != minor.to_integral_value():
        raise Hl7MappingError(
            DATA_TYPE_ERROR,
            where,
            "amount has more decimals than its currency allows",
            value=amount,
        )
    return int(minor)
