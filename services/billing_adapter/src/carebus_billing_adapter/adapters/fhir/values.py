"""FHIR primitive values → contract values, refusing anything inexact or ambiguous."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from typing import Final

import msgspec

from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.adapters.fhir.resources import Meta
from carebus_billing_adapter.adapters.fhir.resources import Money as FhirMoney
from carebus_contracts.envelope import Money

_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_ZERO_DECIMAL_CURRENCIES: Final = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "XAF", "XOF"})
_THREE_DECIMAL_CURRENCIES: Final = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MAX_AMOUNT_DIGITS: Final = 15  # integer digits of an amount: below a quadrillion


def minor_digits(currency: str) -> int:
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return 0
    return 3 if currency in _THREE_DECIMAL_CURRENCIES else 2


def money(value: FhirMoney | None, path: str, default_currency: str) -> Money:
    if value is None or value.value is None:
        raise FhirRejected.one("required", "an amount is required", path, reason="missing_amount")
    currency = value.currency or default_currency
    if not _CURRENCY.match(currency):
        raise FhirRejected.one(
            "value", "currency is not an ISO 4217 code", f"{path}.currency",
            reason="invalid_currency", value=currency,
        )  # fmt: skip
    amount = Decimal(value.value)
    # Checked before scaleb() and int(): NaN, Infinity and 1E999999999 are JSON numbers (or
    # strings) msgspec reads as Decimal, and int() of the last would never finish.
    if not amount.is_finite() or amount.adjusted() >= _MAX_AMOUNT_DIGITS:
        raise FhirRejected.one(
            "value",
            f"the amount is not a finite number below 10^{_MAX_AMOUNT_DIGITS}",
            f"{path}.value",
            reason="invalid_amount",
        )
    minor = amount.scaleb(minor_digits(currency))
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise FhirRejected.one(
            "value",
            "the amount has more decimals than its currency allows",
            f"{path}.value",
            reason="invalid_amount",
            value=str(value.value),
        )
    return Money(amount_minor=int(minor), currency=currency)


def date(text: str | None, path: str) -> dt.date:
    """The calendar day of a FHIR date or dateTime (partial dates are not a day)."""
    if not text:
        raise FhirRejected.one("required", "a date is required", path, reason="missing_date")
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise FhirRejected.one(
            "value", "not a full date (YYYY-MM-DD)", path, reason="invalid_date"
        ) from None


def instant(text: str | None, path: str, tz: dt.tzinfo) -> dt.datetime:
    """A FHIR date/dateTime as an aware instant (a bare date is midnight in ``tz``)."""
    day = date(text, path)
    assert text is not None
    if len(text) <= 10:
        return dt.datetime.combine(day, dt.time(), tzinfo=tz)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirRejected.one(
            "value", "not a FHIR dateTime", path, reason="invalid_date"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def content_id(resource_type: str, body: msgspec.Struct) -> str:
    """A server id for a created resource: the same content gets the same id, so a client's
    retried create is a duplicate, not a second charge."""
    digest = hashlib.sha256(resource_type.encode() + b"\x1f" + msgspec.json.encode(body))
    return digest.hexdigest()[:32]


def entity_version(meta: Meta | None, fallback: dt.datetime, tz: dt.tzinfo) -> int:
    """meta.lastUpdated in ms, else ``fallback`` (when the request arrived) in ms. versionId is
    not used: its small numbers would not order against the timestamps of other updates."""
    if meta is not None and meta.last_updated:
        try:
            return int(instant(meta.last_updated, "meta.lastUpdated", tz).timestamp() * 1000)
        except FhirRejected:
            pass
    return int(fallback.timestamp() * 1000)


def required_key(key: str | None, path: str, what: str) -> str:
    if not key:
        raise FhirRejected.one("required", f"{what} is required", path, reason="missing_reference")
    return key
