"""Contract events of one small journey set for the ops console's tests: appointment A-1 at
SITE01 completed with charge CH-1, claimed in CLM-1 (paid by PAY-1), CH-1's journal J-1
posted and confirmed; A-2 (an unregistered site) and A-3 completed with no charge; A-4
parked for an unknown provider."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from carebus_contracts import billing as b
from carebus_contracts import erp
from carebus_contracts import masterdata as md
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_contracts.exceptions import ExceptionRaised, OriginalMessage, ReasonCategory, Stage
from tests.support.erp_poster import journal
from tests.support.mapper import AT, appointment, envelope, usd, validate

SITE = "SITE01"
UNREGISTERED = "SITE99"


def charge_for(charge_id: str, appointment_id: str) -> b.ChargePosted:
    return b.ChargePosted(
        **envelope(f"{charge_id}-post", charge_id),
        charge=b.Charge(
            charge_id=charge_id,
            patient_ref="MRN-1",
            appointment_id=appointment_id,
            service_code="99213",
            units=1,
            amount=usd(12500),
            service_date=dt.date(2025, 3, 14),
        ),
    )


def claim_for(claim_id: str, charge_id: str) -> b.ClaimAdjudicatedV2:
    return b.ClaimAdjudicatedV2(
        **envelope(f"{claim_id}-v1", claim_id),
        claim_id=claim_id,
        payer_code="BCBS",
        status=b.ClaimStatus.PAID,
        totals=b.ClaimTotals(billed=usd(12500), paid=usd(8000)),
        adjudicated_on=dt.date(2025, 4, 1),
        service_lines=(
            b.ServiceLineAdjudication(
                line_number=1,
                service_code="99213",
                units=1,
                billed=usd(12500),
                paid=usd(8000),
                charge_id=charge_id,
            ),
        ),
    )


def journal_for(journal_id: str, source_event_id: str) -> list[Event]:
    requested = msgspec.structs.replace(
        journal("ops", 1),
        event_id=f"{journal_id}-req",
        journal_id=journal_id,
        entity_key=journal_id,
        site=SITE,
        occurred_at=AT,
        recorded_at=AT,
        source_event_ids=(source_event_id,),
    )
    common: dict[str, Any] = {
        "source_system": "carebus-erp-poster",
        "site": SITE,
        "correlation_id": requested.correlation_id,
        "causation_id": requested.event_id,
        "entity_key": journal_id,
        "occurred_at": AT,
        "recorded_at": AT,
        "journal_id": journal_id,
    }
    posted = erp.JournalPosted(
        **common,
        entity_version=1,
        event_id=f"{journal_id}-posted",
        erp_request_id="REQ-9",
        posted_at=AT + dt.timedelta(seconds=1),
    )
    confirmed = erp.JournalConfirmed(
        **common,
        entity_version=2,
        event_id=f"{journal_id}-confirmed",
        erp_document_number="DOC-77",
        confirmed_at=AT + dt.timedelta(minutes=1),
    )
    return [requested, posted, confirmed]


def location(site_code: str) -> md.LocationChanged:
    return md.LocationChanged(
        **envelope("loc-north-1", "location:CLINIC-N"),
        change=md.ChangeKind.UPSERTED,
        location=md.Location(
            location_id="CLINIC-N",
            name="North clinic",
            site_code=site_code,
            place_of_service="11",
            time_zone="America/Chicago",
        ),
    )


def quarantined(failed: Event, stream_seq: int) -> ExceptionRaised:
    return ExceptionRaised(
        event_id=f"exc-{failed.event_id}",
        occurred_at=AT,
        recorded_at=AT + dt.timedelta(seconds=1),
        source_system="carebus",
        site=failed.site,
        correlation_id=failed.event_id,
        causation_id=failed.event_id,
        entity_key=failed.event_id,
        entity_version=0,
        stage=Stage.MASTERDATA_VALIDATOR,
        reason=ReasonCategory.MASTERDATA,
        reason_code="unknown_provider",
        message="provider code matches no provider",
        original=OriginalMessage(
            stream="SCHEDULING",
            sequence=stream_seq,
            subject="scheduling.appointment.booked.v1.SITE01",
            event_id=failed.event_id,
        ),
    )


def journey() -> list[Event]:
    """Every event except the quarantine's exception (which names a stream sequence)."""
    booked = appointment(s.AppointmentBooked, "A-1", 1)
    completed = appointment(s.AppointmentCompleted, "A-1", 2)
    charge = charge_for("CH-1", "A-1")
    return [
        location(SITE),
        booked,
        completed,
        validate(booked),
        validate(completed),
        charge,
        validate(charge),
        claim_for("CLM-1", "CH-1"),
        b.PaymentPosted(
            **envelope("PAY-1", "PAY-1"),
            payment_id="PAY-1",
            claim_id="CLM-1",
            amount=usd(8000),
            received_on=dt.date(2025, 4, 2),
        ),
        *journal_for("J-1", charge.event_id),
        appointment(s.AppointmentCompleted, "A-2", 1, site=UNREGISTERED),
        # Another patient: A-1's charge is for A-1's patient's visit that day, not A-3's.
        for_patient(appointment(s.AppointmentCompleted, "A-3", 1), "MRN-3"),
    ]


def for_patient(event: Event, patient_ref: str) -> Event:
    """An appointment event for another patient (the same visit key otherwise)."""
    body = msgspec.structs.replace(event.appointment, patient_ref=patient_ref)  # type: ignore[attr-defined]
    return msgspec.structs.replace(event, appointment=body)
