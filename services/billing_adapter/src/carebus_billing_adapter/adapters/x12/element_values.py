"""Typed element values (amounts, dates, codes, quantities) with issues naming segment+element.

Amounts become integer minor units through ``decimal.Decimal``; more than two decimal places is
an error rather than a rounding, so no cent is ever invented or lost.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.segments import Delimiters, Segment
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

_Reason = RejectionReason
# X12 "R" type as used for money: optional minus, digits, optional decimal point. No exponent,
# no plus sign, no grouping.
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_DATE = re.compile(r"\d{8}")
# X12 element lengths of the "R" values read here: monetary amounts R 1/18, quantities R 1/15.
# Longer text is no amount at all (and a 5000-digit one would not even print).
MAX_AMOUNT_LENGTH = 18
MAX_QUANTITY_LENGTH = 15


class AmountError(ValueError):
    pass


def parse_minor_units(text: str) -> int:
    """'-1008.1' -> -100810. Raises AmountError with the reason on anything else."""
    if len(text) > MAX_AMOUNT_LENGTH:
        raise AmountError(f"amount is longer than {MAX_AMOUNT_LENGTH} characters (X12 R 1/18)")
    if not _DECIMAL.fullmatch(text):
        raise AmountError("not a decimal amount")
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise AmountError("more than 2 decimal places")
    return int(value.scaleb(2))


def parse_ccyymmdd(text: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise ValueError("not a CCYYMMDD date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError("not a valid calendar date") from None


@dataclass(slots=True)
class ElementReader:
    """Reads elements of one transaction, logging (not raising) every bad value."""

    issues: IssueLog
    delimiters: Delimiters
    claim: str | None = None  # patient control number of the claim being read, for issues
    # Money figures that could not be read; balancing over the gaps would only report noise.
    money_gaps: int = 0

    def _issue(self, reason: RejectionReason, segment: Segment, number: int, detail: str) -> None:
        element = segment.element_name(number)
        self.issues.add(reason, segment, detail, element=element, claim=self.claim)

    def text(self, segment: Segment, number: int, *, required: bool = False) -> str | None:
        value = segment.element(number)
        if value:
            return value
        if required:
            self._issue(_Reason.MISSING_ELEMENT, segment, number, "required element is missing")
        return None

    def amount(self, segment: Segment, number: int, *, required: bool = True) -> int | None:
        value = self.text(segment, number, required=required)
        if value is None:
            self.money_gaps += required
            return None
        try:
            return parse_minor_units(value)
        except AmountError as error:
            self._issue(_Reason.INVALID_AMOUNT, segment, number, str(error))
            self.money_gaps += 1
            return None

    def quantity(self, segment: Segment, number: int) -> Decimal | None:
        value = self.text(segment, number)
        if value is None:
            return None
        if len(value) > MAX_QUANTITY_LENGTH:
            detail = f"quantity is longer than {MAX_QUANTITY_LENGTH} characters (X12 R 1/15)"
            self._issue(_Reason.INVALID_QUANTITY, segment, number, detail)
            return None
        if not _DECIMAL.fullmatch(value):
            self._issue(_Reason.INVALID_QUANTITY, segment, number, "not a decimal quantity")
            return None
        return Decimal(value)

    def date(self, segment: Segment, number: int, *, required: bool = False) -> dt.date | None:
        value = self.text(segment, number, required=required)
        if value is None:
            return None
        try:
            return parse_ccyymmdd(value)
        except ValueError as error:
            self._issue(_Reason.INVALID_DATE, segment, number, str(error))
            return None

    def code(
        self,
        segment: Segment,
        number: int,
        allowed: Collection[str],
        *,
        required: bool = True,
    ) -> str | None:
        value = self.text(segment, number, required=required)
        if value is None:
            return None
        if value not in allowed:
            choices = ", ".join(sorted(allowed))
            self._issue(_Reason.INVALID_CODE, segment, number, f"not one of {choices}")
            return None
        return value

    def components(self, segment: Segment, number: int) -> list[str]:
        return segment.element(number).split(self.delimiters.component)
