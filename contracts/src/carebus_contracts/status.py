"""Status domain, v1: what became of what the originating systems sent, told back to them
(issue #19, docs/decisions/025). The outbound service derives these from the remittances
and the ERP's answers; its status feed delivers them through a configurable connector.

- ``status.remittance.reported``: a claim paid, denied or reversed by its payer (835 CLP),
  a payment received, or an adjustment (CAS) made: for the billing system.
- ``status.posting.reported``: a journal confirmed (booked, with the ERP's document number)
  or rejected by the ERP: for whoever sent what it was mapped from.

``source_event_id`` names the event reported on; the status event's own id is derived from
it, so a replay reports nothing twice. No patient data: claim, payment, adjustment and
journal ids, payer codes and amounts.
"""

from __future__ import annotations

import enum

from carebus_contracts.billing import CarcGroup
from carebus_contracts.envelope import Event, Money, NonEmptyStr, SchemaVersion


class RemittanceOutcome(enum.StrEnum):
    PAID = "paid"
    """A claim paid (in part or in full), or a payment received."""
    DENIED = "denied"
    """A claim the payer denied."""
    REVERSED = "reversed"
    """A claim's earlier adjudication reversed by the payer."""
    ADJUSTED = "adjusted"
    """An adjustment (CARC group and reason) to a claim or one of its charges."""


class RemittanceStatusReported(Event, tag="status.remittance.reported", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    outcome: RemittanceOutcome
    source_event_id: NonEmptyStr
    source_event_type: NonEmptyStr
    claim_id: str | None = None
    charge_id: str | None = None
    payer_code: str | None = None
    amount: Money
    """Paid (a claim's total paid, a payment) or adjusted (an adjustment's amount)."""
    billed: Money | None = None
    """A claim's billed total."""
    adjustment_group: CarcGroup | None = None
    adjustment_reason: str | None = None
    reference: str | None = None
    """The payment's trace (TRN02) or check number, when the remittance names one."""


class PostingOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class PostingStatusReported(Event, tag="status.posting.reported", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    outcome: PostingOutcome
    source_event_id: NonEmptyStr
    journal_id: NonEmptyStr
    erp_document_number: str | None = None
    fiscal_period: str | None = None
    error_code: str | None = None
    message: str | None = None
    """The ERP's reason for a rejection."""


STATUS_EVENTS: tuple[type[Event], ...] = (RemittanceStatusReported, PostingStatusReported)
