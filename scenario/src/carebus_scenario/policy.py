"""The accounting policy, written from the mapper's documentation (services/mapper/README.md,
"Default rule set (2025.03.2) and chart of accounts") — deliberately not from its code, so
that a mistake in either shows up as a difference.

One posting moves an amount from a credit account to a debit account; a negative amount swaps
the sides; a zero amount posts nothing. Counts use the unit ``XXX`` (one per event) and
balance against 9099; the appointment revenue forecast is a USD memo, 9100 against 9199.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RULE_SET_VERSION: Final = "2025.03.2"
CURRENCY: Final = "USD"
COUNT: Final = "XXX"

# [fee_schedule] of rule set 2025.03.2: expected fee per service code, for the forecast.
FEE_SCHEDULE: Final[dict[str, int]] = {
    "99202": 9500, "99203": 15000, "99204": 23000, "99212": 8000, "99213": 12500,
    "99214": 18500, "99215": 25000, "93000": 4500,
}  # fmt: skip
DEFAULT_FEE: Final = 10000

ACCOUNTS: Final[dict[str, str]] = {
    "1010": "Cash - operating deposits and EFT",
    "1200": "Accounts receivable - payers",
    "1210": "Accounts receivable - patients",
    "1250": "Payer provider-level adjustments clearing (X12 PLB)",
    "4000": "Patient service revenue (gross charges)",
    "4700": "Interest income - payer prompt-pay interest",
    "4900": "Contractual allowances (CARC group CO)",
    "4950": "Write-offs - other, payer-initiated, corrections",
    "9000": "Appointments booked",
    "9010": "Appointments cancelled",
    "9020": "Appointments no-show",
    "9030": "Appointments rescheduled",
    "9040": "Visits completed",
    "9099": "Statistical offset",
    "9100": "Forecast revenue - scheduled appointments (memo)",
    "9199": "Forecast revenue offset (memo)",
    "9300": "Claims paid (count)",
    "9310": "Claims denied (count)",
    "9320": "Claims reversed (count)",
}

ACTIVE: Final = frozenset({"booked", "checked_in"})
INACTIVE_OR_NONE: Final = frozenset({"none", "cancelled", "no_show", "completed"})
_COUNT_ACCOUNT: Final = {
    "booked": "9000",
    "rescheduled": "9030",
    "cancelled": "9010",
    "no_show": "9020",
    "completed": "9040",
}
_CLAIM_ACCOUNT: Final = {"paid": "9300", "denied": "9310", "reversed": "9320"}


@dataclass(frozen=True)
class Line:
    account: str
    side: str  # debit | credit
    amount_minor: int  # > 0
    currency: str


def post(amount: int, debit: str, credit: str, currency: str = CURRENCY) -> list[Line]:
    if amount == 0:
        return []
    if amount < 0:
        debit, credit, amount = credit, debit, -amount
    return [Line(debit, "debit", amount, currency), Line(credit, "credit", amount, currency)]


def mirror(lines: list[Line]) -> list[Line]:
    flip = {"debit": "credit", "credit": "debit"}
    return [Line(x.account, flip[x.side], x.amount_minor, x.currency) for x in lines]


def expected_fee(service_code: str | None) -> int:
    return FEE_SCHEDULE.get(service_code or "", DEFAULT_FEE)


def appointment(event: str, status: str, previous: str, service_code: str | None) -> list[Line]:
    """Appointment rules (appointments.toml), by event and status transition."""
    becomes_active = status in ACTIVE and previous in INACTIVE_OR_NONE
    was_active = previous in ACTIVE
    fee = expected_fee(service_code)
    lines: list[Line] = []
    if event == "booked":
        if becomes_active:
            lines += post(1, "9000", "9099", COUNT) + post(fee, "9100", "9199")
    elif event == "rescheduled":
        lines += post(1, "9030", "9099", COUNT)
        if becomes_active:
            lines += post(fee, "9100", "9199")
    elif event in ("modified", "checked_in"):
        if becomes_active:
            lines += post(fee, "9100", "9199")
    elif event in ("cancelled", "no_show", "completed"):
        lines += post(1, _COUNT_ACCOUNT[event], "9099", COUNT)
        if was_active:
            lines += post(fee, "9199", "9100")
    else:
        raise ValueError(f"no appointment rule for {event!r}")
    return lines


def charge(amount: int, *, self_pay: bool, reversal: bool) -> list[Line]:
    """Gross revenue against the receivable of whoever pays; a reversal is the mirror."""
    lines = post(amount, "1210" if self_pay else "1200", "4000")
    return mirror(lines) if reversal else lines


def payment(amount: int, *, self_pay: bool) -> list[Line]:
    return post(amount, "1010", "1210" if self_pay else "1200")


def adjustment(scope: str, group: str, reason: str, amount: int, *, self_pay: bool) -> list[Line]:
    """By priority: PLB interest, other PLB, no payer, then by CARC group."""
    if scope == "provider":
        return post(amount, "4700" if reason == "L6" else "1250", "1010")
    if self_pay:
        return post(amount, "4950", "1210")
    if group == "CO":
        return post(amount, "4900", "1200")
    if group == "PR":
        return post(amount, "1210", "1200")
    return post(amount, "4950", "1200")  # OA, PI, CR


def claim(status: str) -> list[Line]:
    """Adjudications are counts only; the money posts through payments and adjustments."""
    return post(1, _CLAIM_ACCOUNT[status], "9099", COUNT)
