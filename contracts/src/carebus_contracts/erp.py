"""ERP domain, v1: journal entries requested by the mapper and their fate in the ERP.

Lifecycle of one ``journal_id``: requested → posted (the ERP accepted the document for
processing) → confirmed (booked, with the ERP's document number) or rejected.
Line amounts are positive :class:`~carebus_contracts.envelope.Money`; ``side`` gives the
direction.  Decoding checks structure only; :meth:`JournalEntryRequested.problems` checks
the accounting rules (the mapper before publishing, the ERP poster before posting).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from typing import Annotated

import msgspec

from carebus_contracts.envelope import (
    AwareDatetime,
    Contract,
    Event,
    Money,
    NonEmptyStr,
    SchemaVersion,
)
from carebus_contracts.masterdata import PayerClass


class Side(enum.StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class FinancialDimensions(Contract, frozen=True, kw_only=True):
    cost_centre: str | None = None
    department: str | None = None
    location: str | None = None
    payer_class: PayerClass | None = None
    provider: str | None = None


class JournalLine(Contract, frozen=True, kw_only=True):
    line_number: Annotated[int, msgspec.Meta(ge=1)]
    account: NonEmptyStr
    side: Side
    amount: Money
    dimensions: FinancialDimensions = msgspec.field(default_factory=FinancialDimensions)
    memo: str | None = None


class JournalEntryRequested(Event, tag="erp.journal.requested", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    journal_id: NonEmptyStr
    """Deterministic from the source events, so a re-sent request is the same journal."""
    company: NonEmptyStr
    posting_date: dt.date
    description: str
    lines: tuple[JournalLine, ...]
    source_event_ids: tuple[str, ...] = ()
    rule_set_version: str | None = None
    """Added in 1.1: the version of the mapping rule set that produced the journal."""
    mapping_rule: str | None = None
    """Added in 1.1: the id of the mapping rule that matched the source event."""

    def problems(self) -> list[str]:
        """Accounting-rule violations; empty when the entry is postable."""
        found: list[str] = []
        if len(self.lines) < 2:
            found.append("a journal entry needs at least two lines")
        balance: defaultdict[str, int] = defaultdict(int)
        for index, line in enumerate(self.lines):
            if line.amount.amount_minor <= 0:
                found.append(f"$.lines[{index}].amount.amount_minor must be positive")
            sign = 1 if line.side is Side.DEBIT else -1
            balance[line.amount.currency] += sign * line.amount.amount_minor
        found.extend(
            f"debits and credits differ by {delta} minor units of {currency}"
            for currency, delta in sorted(balance.items())
            if delta
        )
        return found


class JournalPosted(Event, tag="erp.journal.posted", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    journal_id: NonEmptyStr
    erp_request_id: NonEmptyStr
    posted_at: AwareDatetime


class JournalConfirmed(Event, tag="erp.journal.confirmed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    journal_id: NonEmptyStr
    erp_document_number: NonEmptyStr
    fiscal_period: str | None = None
    confirmed_at: AwareDatetime


class JournalRejected(Event, tag="erp.journal.rejected", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    journal_id: NonEmptyStr
    error_code: NonEmptyStr
    message: str
    retryable: bool
    rejected_at: AwareDatetime


ERP_EVENTS: tuple[type[Event], ...] = (
    JournalEntryRequested,
    JournalPosted,
    JournalConfirmed,
    JournalRejected,
)
