"""The sandbox ERP's validation of a journal (besides the chart of accounts)."""

from __future__ import annotations

import re
from collections import defaultdict

from carebus_contracts.erp_journal_api import FieldError, JournalBody

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def problems(body: JournalBody) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(body.lines) < 2:
        errors.append(
            FieldError(code="too_few_lines", message="a journal needs two lines", path="lines")
        )
    balance: defaultdict[str, int] = defaultdict(int)
    for i, line in enumerate(body.lines):
        if line.side not in ("debit", "credit"):
            errors.append(
                FieldError(
                    code="bad_side",
                    message="side must be debit or credit",
                    path=f"lines[{i}].side",
                    value=line.side,
                )
            )
        if line.amount_minor <= 0:
            errors.append(
                FieldError(
                    code="bad_amount",
                    message="amounts must be positive",
                    path=f"lines[{i}].amount_minor",
                    value=str(line.amount_minor),
                )
            )
        if not _CURRENCY.match(line.currency):
            errors.append(
                FieldError(
                    code="bad_currency",
                    message="currency must be ISO 4217",
                    path=f"lines[{i}].currency",
                    value=line.currency,
                )
            )
        balance[line.currency] += line.amount_minor if line.side == "debit" else -line.amount_minor
    errors.extend(
        FieldError(
            code="unbalanced",
            message=f"debits and credits differ by {delta} minor units of {currency}",
            path="lines",
            value=currency,
        )
        for currency, delta in sorted(balance.items())
        if delta
    )
    return errors
