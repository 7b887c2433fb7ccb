"""Status back: what became of a remittance line or a journal, as a status event. Pure.

The status event's id is derived from the event it reports on, so a replayed or redelivered
source publishes the same id again and JetStream keeps one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from carebus_contracts import status as st
from carebus_contracts.billing import ClaimStatus
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalConfirmed, JournalRejected
from carebus_contracts.validated import (
    ValidatedAdjustmentPosted,
    ValidatedClaimAdjudicated,
    ValidatedPaymentPosted,
)

SOURCE_SYSTEM = "carebus-outbound"
_CLAIM_OUTCOME = {
    ClaimStatus.PAID: st.RemittanceOutcome.PAID,
    ClaimStatus.DENIED: st.RemittanceOutcome.DENIED,
    ClaimStatus.REVERSED: st.RemittanceOutcome.REVERSED,
}
Reported = (
    ValidatedPaymentPosted
    | ValidatedAdjustmentPosted
    | ValidatedClaimAdjudicated
    | JournalConfirmed
    | JournalRejected
)


def status_id(source_event_id: str) -> str:
    return f"st-{source_event_id}"


def _envelope(source: Event, entity_key: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "event_id": status_id(source.event_id),
        "occurred_at": source.occurred_at,
        "recorded_at": now,
        "source_system": SOURCE_SYSTEM,
        "site": source.site,
        "correlation_id": source.correlation_id,
        "causation_id": source.event_id,
        "entity_key": entity_key,
        "entity_version": source.entity_version,
    }


def report(source: Event, now: dt.datetime) -> Event | None:
    """The status event for ``source``; None for an event no one is told about."""
    if isinstance(source, ValidatedPaymentPosted):
        payment = source.original
        return st.RemittanceStatusReported(
            **_envelope(source, payment.claim_id or payment.payment_id, now),
            outcome=st.RemittanceOutcome.PAID,
            source_event_id=source.event_id,
            source_event_type="validated.payment.posted",
            claim_id=payment.claim_id,
            payer_code=payment.payer_code,
            amount=payment.amount,
            reference=payment.reference,
        )
    if isinstance(source, ValidatedAdjustmentPosted):
        adj = source.original
        return st.RemittanceStatusReported(
            **_envelope(source, adj.claim_id or adj.adjustment_id, now),
            outcome=st.RemittanceOutcome.ADJUSTED,
            source_event_id=source.event_id,
            source_event_type="validated.adjustment.posted",
            claim_id=adj.claim_id,
            charge_id=adj.charge_id,
            payer_code=adj.payer_code,
            amount=adj.amount,
            adjustment_group=adj.group_code,
            adjustment_reason=adj.reason_code,
            reference=adj.reference,
        )
    if isinstance(source, ValidatedClaimAdjudicated):
        claim = source.original
        return st.RemittanceStatusReported(
            **_envelope(source, claim.claim_id, now),
            outcome=_CLAIM_OUTCOME[claim.status],
            source_event_id=source.event_id,
            source_event_type="validated.claim.adjudicated",
            claim_id=claim.claim_id,
            payer_code=claim.payer_code,
            amount=claim.totals.paid,
            billed=claim.totals.billed,
            reference=claim.payment_reference,
        )
    if isinstance(source, JournalConfirmed):
        return st.PostingStatusReported(
            **_envelope(source, source.journal_id, now),
            outcome=st.PostingOutcome.CONFIRMED,
            source_event_id=source.event_id,
            journal_id=source.journal_id,
            erp_document_number=source.erp_document_number,
            fiscal_period=source.fiscal_period,
        )
    if isinstance(source, JournalRejected):
        return st.PostingStatusReported(
            **_envelope(source, source.journal_id, now),
            outcome=st.PostingOutcome.REJECTED,
            source_event_id=source.event_id,
            journal_id=source.journal_id,
            error_code=source.error_code,
            message=source.message,
        )
    return None
