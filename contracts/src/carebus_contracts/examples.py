"""Canonical example events, one or more per contract version.

``carebus-contracts generate`` writes each as a golden file under
``contracts/examples/<event type>/v<major>.<minor>/<name>.json`` the first time that
version is seen, and never rewrites it: the committed files are the history that tests
replay through today's types.  Services may also use these as test fixtures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from carebus_contracts import billing as b
from carebus_contracts import erp
from carebus_contracts import masterdata as md
from carebus_contracts import scheduling as s
from carebus_contracts import status as st
from carebus_contracts import validated as v
from carebus_contracts.envelope import Event, Money
from carebus_contracts.exceptions import ExceptionRaised, OriginalMessage, ReasonCategory, Stage

_CHICAGO = dt.timezone(dt.timedelta(hours=-6))
_AT = dt.datetime(2025, 3, 10, 9, 15, tzinfo=_CHICAGO)
_RECORDED = dt.datetime(2025, 3, 10, 15, 15, 2, 125000, tzinfo=dt.UTC)


def _envelope(event_id: str, entity_key: str, *, version: int = 1, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": _AT,
        "recorded_at": _RECORDED,
        "source_system": "epic-cadence",
        "site": "SITE01",
        "correlation_id": f"corr-{entity_key}",
        "entity_key": entity_key,
        "entity_version": version,
    }
    base.update(extra)
    return base


def _appointment(status: s.AppointmentStatus, reason: str | None = None) -> s.Appointment:
    return s.Appointment(
        appointment_id="A1001",
        patient_ref="MRN-000123",
        provider_code="DRSMITH",
        location_code="CLINIC-N",
        department_code="CARDIO",
        service_code="99213",
        slot_start=dt.datetime(2025, 3, 14, 10, 0, tzinfo=_CHICAGO),
        slot_end=dt.datetime(2025, 3, 14, 10, 30, tzinfo=_CHICAGO),
        status=status,
        reason=reason or "follow-up visit",
    )


def _scheduling() -> list[Event]:
    st = s.AppointmentStatus
    return [
        s.AppointmentBooked(
            **_envelope("evt-appt-1", "A1001"), appointment=_appointment(st.BOOKED)
        ),
        s.AppointmentRescheduled(
            **_envelope("evt-appt-2", "A1001", version=2),
            appointment=_appointment(st.BOOKED),
            previous_slot_start=dt.datetime(2025, 3, 13, 9, 0, tzinfo=_CHICAGO),
            previous_slot_end=dt.datetime(2025, 3, 13, 9, 30, tzinfo=_CHICAGO),
        ),
        s.AppointmentModified(
            **_envelope("evt-appt-3", "A1001", version=3), appointment=_appointment(st.BOOKED)
        ),
        s.AppointmentCancelled(
            **_envelope("evt-appt-4", "A1001", version=4),
            appointment=_appointment(st.CANCELLED, "patient request"),
        ),
        s.AppointmentNoShow(
            **_envelope("evt-appt-5", "A1001", version=4), appointment=_appointment(st.NO_SHOW)
        ),
        s.AppointmentCheckedIn(
            **_envelope("evt-appt-6", "A1001", version=4), appointment=_appointment(st.CHECKED_IN)
        ),
        s.AppointmentCompleted(
            **_envelope("evt-appt-7", "A1001", version=5), appointment=_appointment(st.COMPLETED)
        ),
        s.AppointmentRequested(
            **_envelope("evt-appt-8", "A1002"),
            request=_request(s.AppointmentRequestStatus.WAITLIST, "follow-up visit"),
        ),
        s.AppointmentRequestCancelled(
            **_envelope("evt-appt-9", "A1002", version=2),
            request=_request(s.AppointmentRequestStatus.CANCELLED, "patient request"),
        ),
    ]


def _request(status: s.AppointmentRequestStatus, reason: str) -> s.AppointmentRequest:
    return s.AppointmentRequest(
        appointment_id="A1002",
        patient_ref="MRN-000123",
        location_code="CLINIC-N",
        department_code="CARDIO",
        service_code="99213",
        status=status,
        requested_from=dt.date(2025, 3, 17),
        requested_to=dt.date(2025, 3, 21),
        duration_minutes=30,
        reason=reason,
    )


_USD = "USD"
_CHARGE = b.Charge(
    charge_id="CH-5001",
    patient_ref="MRN-000123",
    encounter_id="ENC-77",
    appointment_id="A1001",
    service_code="99213",
    modifiers=("25",),
    units=1,
    amount=Money(amount_minor=12500, currency=_USD),
    service_date=dt.date(2025, 3, 14),
    performing_provider_code="DRSMITH",
    department_code="CARDIO",
    location_code="CLINIC-N",
    payer_code="BCBS",
)
_ADJUSTMENT = b.ClaimAdjustment(
    group_code=b.CarcGroup.CONTRACTUAL,
    reason_code="45",
    amount=Money(amount_minor=2500, currency=_USD),
)


def _billing() -> list[Event]:
    env: dict[str, Any] = {"source_system": "athena-billing"}
    return [
        b.ChargePosted(**_envelope("evt-ch-1", "CH-5001", **env), charge=_CHARGE),
        b.ChargeReversed(
            **_envelope("evt-ch-2", "CH-5002", **env),
            charge=_CHARGE,
            reversed_charge_id="CH-5001",
            reason="posted to wrong patient",
        ),
        b.PaymentPosted(
            **_envelope("evt-pay-1", "PAY-9001", **env),
            payment_id="PAY-9001",
            payer_code="BCBS",
            claim_id="CLM-3001",
            amount=Money(amount_minor=8000, currency=_USD),
            received_on=dt.date(2025, 4, 2),
            reference="EFT-1234567",
            method=b.PaymentMethod.EFT,
            payee_npi="1881234563",
        ),
        b.AdjustmentPosted(
            **_envelope("evt-adj-1", "ADJ-1", **env),
            adjustment_id="ADJ-1",
            claim_id="CLM-3001",
            charge_id="CH-5001",
            payer_code="BCBS",
            group_code=b.CarcGroup.CONTRACTUAL,
            reason_code="45",
            remark_codes=("N130",),
            amount=Money(amount_minor=2500, currency=_USD),
            scope=b.AdjustmentScope.SERVICE_LINE,
            quantity=1,
            payee_npi="1881234563",
        ),
        b.ClaimAdjudicated(
            **_envelope("evt-clm-1", "CLM-3001", **env),
            claim_id="CLM-3001",
            payer_code="BCBS",
            payer_claim_id="PCN-88",
            status=b.ClaimStatus.PAID,
            billed=Money(amount_minor=12500, currency=_USD),
            paid=Money(amount_minor=8000, currency=_USD),
            patient_responsibility=Money(amount_minor=2000, currency=_USD),
            adjudicated_on=dt.date(2025, 4, 1),
            adjustments=(_ADJUSTMENT,),
            payment_reference="EFT-1234567",
        ),
        b.ClaimAdjudicatedV2(
            **_envelope("evt-clm-2", "CLM-3001", version=2, **env),
            claim_id="CLM-3001",
            payer_code="BCBS",
            payer_claim_id="PCN-88",
            status=b.ClaimStatus.PAID,
            totals=b.ClaimTotals(
                billed=Money(amount_minor=12500, currency=_USD),
                paid=Money(amount_minor=8000, currency=_USD),
                patient_responsibility=Money(amount_minor=2000, currency=_USD),
            ),
            adjudicated_on=dt.date(2025, 4, 1),
            service_lines=(
                b.ServiceLineAdjudication(
                    line_number=1,
                    service_code="99213",
                    units=1,
                    billed=Money(amount_minor=12500, currency=_USD),
                    paid=Money(amount_minor=8000, currency=_USD),
                    charge_id="CH-5001",
                    adjustments=(_ADJUSTMENT,),
                ),
            ),
            payment_reference="EFT-1234567",
            payee_npi="1881234563",
        ),
    ]


def _masterdata() -> list[Event]:
    up = md.ChangeKind.UPSERTED
    env: dict[str, Any] = {"source_system": "carebus-masterdata"}
    return [
        md.ProviderChanged(
            **_envelope("evt-md-1", "P-1", **env),
            change=up,
            provider=md.Provider(
                provider_id="P-1",
                npi="1234567893",
                name="Smith, Jane",
                taxonomy_code="207RC0000X",
                department_id="D-CARDIO",
                valid_from=dt.date(2024, 1, 1),
                valid_to=dt.date(2026, 12, 31),
            ),
        ),
        md.LocationChanged(
            **_envelope("evt-md-2", "L-1", **env),
            change=up,
            location=md.Location(
                location_id="L-1",
                name="North Clinic",
                site_code="SITE01",
                address=md.Address(
                    lines=("100 Main St",), city="Springfield", state="IL", postal_code="62701"
                ),
                place_of_service="11",
                time_zone="America/Chicago",
                cost_centre_id="CC-100",
            ),
        ),
        md.DepartmentChanged(
            **_envelope("evt-md-3", "D-CARDIO", **env),
            change=up,
            department=md.Department(
                department_id="D-CARDIO",
                name="Cardiology",
                cost_centre_id="CC-100",
                location_id="L-1",
            ),
        ),
        md.ServiceChanged(
            **_envelope("evt-md-4", "99213", **env),
            change=up,
            service=md.Service(
                service_code="99213",
                code_system=md.CodeSystem.CPT,
                description="Office or other outpatient visit, established patient",
                revenue_code="0510",
            ),
        ),
        md.PayerChanged(
            **_envelope("evt-md-5", "PY-BCBS", **env),
            change=up,
            payer=md.Payer(
                payer_id="PY-BCBS",
                name="Blue Cross Blue Shield",
                payer_class=md.PayerClass.COMMERCIAL,
            ),
        ),
        md.CostCentreChanged(
            **_envelope("evt-md-6", "CC-100", **env),
            change=md.ChangeKind.DEACTIVATED,
            cost_centre=md.CostCentre(
                cost_centre_id="CC-100", name="Cardiology North", active=False
            ),
        ),
        md.CrossReferenceChanged(
            **_envelope("evt-md-7", "epic-cadence:provider:DRSMITH", **env),
            change=up,
            cross_reference=md.CrossReference(
                source_system="epic-cadence",
                kind=md.EntityKind.PROVIDER,
                source_code="DRSMITH",
                canonical_id="P-1",
            ),
        ),
    ]


_ENRICHMENT = v.Enrichment(
    provider_id="P-1",
    provider_npi="1234567893",
    location_id="L-1",
    department_id="D-CARDIO",
    service_code="99213",
    payer_id="PY-BCBS",
    cost_centre="CC-100",
    payer_class=md.PayerClass.COMMERCIAL,
    place_of_service="11",
    time_zone="America/Chicago",
)

_VALIDATED: dict[type[Event], Callable[..., Event]] = dict(v.VALIDATED_FOR)


def _validated(originals: list[Event]) -> list[Event]:
    out: list[Event] = []
    for original in originals:
        wrapper = _VALIDATED.get(type(original))
        if wrapper is None:
            continue
        # Remittance events are booked to their claim's site (docs/decisions/021).
        booked = {"site_source": v.SiteSource.CLAIM} if hasattr(original, "claim_id") else {}
        out.append(
            wrapper(
                event_id=f"val-{original.event_id}",
                occurred_at=original.occurred_at,
                recorded_at=_RECORDED + dt.timedelta(seconds=1),
                source_system="carebus-masterdata-validator",
                site=original.site,
                correlation_id=original.correlation_id,
                causation_id=original.event_id,
                entity_key=original.entity_key,
                entity_version=original.entity_version,
                original=original,
                enrichment=_ENRICHMENT,
                **booked,
            )
        )
    return out


def _erp() -> list[Event]:
    env: dict[str, Any] = {"source_system": "carebus-mapper", "causation_id": "val-evt-ch-1"}
    dims = erp.FinancialDimensions(
        cost_centre="CC-100",
        department="D-CARDIO",
        location="L-1",
        payer_class=md.PayerClass.COMMERCIAL,
        provider="P-1",
    )
    amount = Money(amount_minor=12500, currency=_USD)
    erp_env: dict[str, Any] = {"source_system": "carebus-erp-poster", "causation_id": "evt-je-1"}
    return [
        erp.JournalEntryRequested(
            **_envelope("evt-je-1", "JE-CH-5001", **env),
            journal_id="JE-CH-5001",
            company="CAREBUS-HEALTH",
            posting_date=dt.date(2025, 3, 14),
            description="Charge CH-5001 99213",
            lines=(
                erp.JournalLine(
                    line_number=1,
                    account="1200",
                    side=erp.Side.DEBIT,
                    amount=amount,
                    dimensions=dims,
                ),
                erp.JournalLine(
                    line_number=2,
                    account="4000",
                    side=erp.Side.CREDIT,
                    amount=amount,
                    dimensions=dims,
                ),
            ),
            source_event_ids=("evt-ch-1",),
            rule_set_version="2025.03.1",
            mapping_rule="charge-posted",
        ),
        erp.JournalPosted(
            **_envelope("evt-je-2", "JE-CH-5001", version=2, **erp_env),
            journal_id="JE-CH-5001",
            erp_request_id="REQ-42",
            posted_at=_RECORDED,
        ),
        erp.JournalConfirmed(
            **_envelope("evt-je-3", "JE-CH-5001", version=3, **erp_env),
            journal_id="JE-CH-5001",
            erp_document_number="GL-2025-000981",
            fiscal_period="2025-03",
            confirmed_at=_RECORDED,
        ),
        erp.JournalRejected(
            **_envelope("evt-je-4", "JE-CH-5001", version=3, **erp_env),
            journal_id="JE-CH-5001",
            error_code="DIM-404",
            message="Cost centre CC-100 is closed for posting",
            retryable=False,
            rejected_at=_RECORDED,
        ),
    ]


def _exceptions() -> list[Event]:
    return [
        ExceptionRaised(
            **_envelope("exc-1", "CH-5001", source_system="carebus-masterdata-validator"),
            stage=Stage.MASTERDATA_VALIDATOR,
            reason=ReasonCategory.MASTERDATA,
            reason_code="unknown_provider",
            message="Provider code DRSMTIH from athena-billing has no cross reference",
            original=OriginalMessage(
                stream="BILLING",
                sequence=1042,
                subject="billing.charge.posted.v1.SITE01",
                event_id="evt-ch-1",
                payload=b'{"event_type":"billing.charge.posted"}',
            ),
            path="$.charge.performing_provider_code",
            offending_value="DRSMTIH",
        )
    ]


def _status() -> list[Event]:
    env: dict[str, Any] = {"source_system": "carebus-outbound"}
    return [
        st.RemittanceStatusReported(
            **_envelope("st-val-evt-clm-1", "CLM-77", causation_id="val-evt-clm-1", **env),
            outcome=st.RemittanceOutcome.DENIED,
            source_event_id="val-evt-clm-1",
            source_event_type="validated.claim.adjudicated",
            claim_id="CLM-77",
            payer_code="BCBS",
            amount=Money(amount_minor=0, currency=_USD),
            billed=Money(amount_minor=12500, currency=_USD),
        ),
        st.PostingStatusReported(
            **_envelope("st-evt-je-3", "JE-CH-5001", causation_id="evt-je-3", **env),
            outcome=st.PostingOutcome.CONFIRMED,
            source_event_id="evt-je-3",
            journal_id="JE-CH-5001",
            erp_document_number="GL-2025-000981",
            fiscal_period="2025-03",
        ),
    ]


def build_examples() -> list[tuple[Event, str]]:
    """(event, example name) pairs covering every registered contract version."""
    sched, bill = _scheduling(), _billing()
    events = [
        *sched, *bill, *_masterdata(), *_validated([*sched, *bill]), *_erp(), *_exceptions(),
        *_status(),
    ]  # fmt: skip
    return [(event, "basic") for event in events]
