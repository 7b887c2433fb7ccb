"""What one event adds to the tracker: a step of an entity's journey, links between
entities, a journal's sources, an exception, a registered site. Pure: no I/O.

Entities are named by the ids the contracts carry (not the envelope's ``entity_key``, which
for an exception is the failed event): an appointment by ``appointment_id``, a charge by
``charge_id`` (a reversal by the charge it reverses), a claim by ``claim_id``, a payment or
adjustment by its id, a journal by ``journal_id``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from carebus_contracts import billing as b
from carebus_contracts import erp
from carebus_contracts import masterdata as md
from carebus_contracts import scheduling as sch
from carebus_contracts.envelope import Event
from carebus_contracts.exceptions import ExceptionRaised
from carebus_contracts.validated import Validated

APPOINTMENT, CHARGE, CLAIM, PAYMENT, ADJUSTMENT, JOURNAL = (
    "appointment", "charge", "claim", "payment", "adjustment", "journal",
)  # fmt: skip
KINDS = (APPOINTMENT, CHARGE, CLAIM, PAYMENT, ADJUSTMENT, JOURNAL)

# The stages of a journey, in order; an exception may come at any of them.
RECEIVED, VALIDATED, MAPPED, POSTED, CONFIRMED, REJECTED = (
    "received", "validated", "mapped", "posted", "confirmed", "rejected",
)  # fmt: skip
QUARANTINED, EXCEPTION = "quarantined", "exception"


@dataclass(frozen=True, slots=True)
class Where:
    """Where the event sits in JetStream."""

    stream: str
    seq: int
    subject: str


@dataclass(frozen=True, slots=True)
class Step:
    event_id: str
    kind: str
    entity_key: str
    site: str
    stage: str
    event_type: str
    status: str | None
    entity_version: int
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    causation_id: str | None
    stream: str
    stream_seq: int
    subject: str
    erp_document: str | None = None


@dataclass(frozen=True, slots=True)
class ExceptionStep:
    event_id: str
    failed_event_id: str | None
    site: str
    stage: str
    reason: str
    reason_code: str
    recorded_at: dt.datetime
    stream: str
    stream_seq: int
    subject: str


@dataclass(frozen=True, slots=True)
class Link:
    kind: str
    entity_key: str
    other_kind: str
    other_key: str


@dataclass(frozen=True, slots=True)
class SiteLocation:
    location_id: str
    site: str
    active: bool
    entity_version: int


@dataclass(frozen=True, slots=True)
class VisitKey:
    """An appointment or charge, and the visit it belongs to: the same patient at the same
    site on the same day, as a digest (the patient reference itself is never stored). It
    links a charge to its visit when the billing system sends a visit number the scheduling
    feed does not know (reconciliation's rule: carebus_shared.reconcile.domain)."""

    kind: str
    entity_key: str
    visit_key: str


def visit_key(site: str, patient_ref: str, day: dt.date) -> str:
    data = f"{site}\x00{patient_ref}\x00{day.isoformat()}".encode()
    return hashlib.blake2b(data, digest_size=12, person=b"carebus-visit").hexdigest()


@dataclass
class Projection:
    steps: list[Step] = field(default_factory=list)
    exceptions: list[ExceptionStep] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    journal_sources: list[tuple[str, str]] = field(default_factory=list)
    site_locations: list[SiteLocation] = field(default_factory=list)
    visits: list[VisitKey] = field(default_factory=list)

    def add(self, event: Event, where: Where) -> None:
        """Add what ``event`` (found at ``where``) tells; an event it does not follow adds
        nothing."""
        if isinstance(event, ExceptionRaised):
            self.exceptions.append(_exception(event))
            return
        if isinstance(event, md.LocationChanged):
            self._site(event)
            return
        stage, business = RECEIVED, event
        if isinstance(event, Validated):
            stage, business = VALIDATED, event.original
        found = _entity(business)
        if found is not None:
            kind, key, status, links = found
            self.steps.append(_step(event, where, kind, key, stage, status))
            if stage == RECEIVED:  # a validated copy names the same links again
                self.links.extend(_both_ways(kind, key, links))
                visit = _visit_of(business)
                if visit is not None:
                    self.visits.append(VisitKey(kind, key, visit))
            return
        self._journal(event, where)

    def _journal(self, event: Event, where: Where) -> None:
        document: str | None = None
        recorded_at = event.recorded_at
        if isinstance(event, erp.JournalEntryRequested):
            stage = MAPPED
            self.journal_sources.extend((event.journal_id, s) for s in event.source_event_ids)
        elif isinstance(event, erp.JournalPosted):
            stage, document, recorded_at = POSTED, event.erp_request_id, event.posted_at
        elif isinstance(event, erp.JournalConfirmed):
            stage, document = CONFIRMED, event.erp_document_number
            recorded_at = event.confirmed_at
        elif isinstance(event, erp.JournalRejected):
            stage, document, recorded_at = REJECTED, event.error_code, event.rejected_at
        else:
            return
        self.steps.append(
            _step(event, where, JOURNAL, event.journal_id, stage, None, recorded_at, document)
        )

    def _site(self, event: md.LocationChanged) -> None:
        location = event.location
        if location.site_code:
            active = event.change is md.ChangeKind.UPSERTED and location.active
            self.site_locations.append(
                SiteLocation(location.location_id, location.site_code, active, event.entity_version)
            )

    def __len__(self) -> int:
        return len(self.steps) + len(self.exceptions) + len(self.site_locations)


def _entity(event: Any) -> tuple[str, str, str | None, list[tuple[str, str]]] | None:
    """(kind, key, status, links) of a scheduling or billing event; None for others."""
    if isinstance(event, (sch.AppointmentRequested, sch.AppointmentRequestCancelled)):
        return APPOINTMENT, event.request.appointment_id, event.request.status.value, []
    appointment = getattr(event, "appointment", None)
    if isinstance(appointment, sch.Appointment):
        return APPOINTMENT, appointment.appointment_id, appointment.status.value, []
    if isinstance(event, b.ChargeReversed):
        return CHARGE, event.reversed_charge_id, "reversed", _charge_links(event.charge)
    if isinstance(event, b.ChargePosted):
        return CHARGE, event.charge.charge_id, "posted", _charge_links(event.charge)
    if isinstance(event, b.ClaimAdjudicatedV2):
        charges = [(CHARGE, line.charge_id) for line in event.service_lines if line.charge_id]
        return CLAIM, event.claim_id, event.status.value, charges
    if isinstance(event, b.PaymentPosted):
        return PAYMENT, event.payment_id, None, [(CLAIM, event.claim_id)] if event.claim_id else []
    if isinstance(event, b.AdjustmentPosted):
        links = [(CLAIM, event.claim_id)] if event.claim_id else []
        links += [(CHARGE, event.charge_id)] if event.charge_id else []
        return ADJUSTMENT, event.adjustment_id, None, links
    return None


def _visit_of(event: Any) -> str | None:
    """The visit key of a scheduled appointment or a posted charge; None for others."""
    appointment = getattr(event, "appointment", None)
    if isinstance(appointment, sch.Appointment):
        return visit_key(event.site, appointment.patient_ref, appointment.slot_start.date())
    if isinstance(event, b.ChargePosted):
        charge = event.charge
        return visit_key(event.site, charge.patient_ref, charge.service_date)
    return None


def _charge_links(charge: b.Charge) -> list[tuple[str, str]]:
    return [(APPOINTMENT, charge.appointment_id)] if charge.appointment_id else []


def _both_ways(kind: str, key: str, others: list[tuple[str, str]]) -> list[Link]:
    links = []
    for other_kind, other_key in others:
        links.append(Link(kind, key, other_kind, other_key))
        links.append(Link(other_kind, other_key, kind, key))
    return links


def _step(
    event: Event,
    where: Where,
    kind: str,
    key: str,
    stage: str,
    status: str | None,
    recorded_at: dt.datetime | None = None,
    erp_document: str | None = None,
) -> Step:
    return Step(
        event_id=event.event_id,
        kind=kind,
        entity_key=key,
        site=event.site,
        stage=stage,
        event_type=event.event_type,
        status=status,
        entity_version=event.entity_version,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at if recorded_at is None else recorded_at,
        causation_id=event.causation_id,
        stream=where.stream,
        stream_seq=where.seq,
        subject=where.subject,
        erp_document=erp_document,
    )


def _exception(event: ExceptionRaised) -> ExceptionStep:
    original = event.original
    return ExceptionStep(
        event_id=event.event_id,
        failed_event_id=original.event_id,
        site=event.site,
        stage=event.stage.value,
        reason=event.reason.value,
        reason_code=event.reason_code,
        recorded_at=event.recorded_at,
        stream=original.stream,
        stream_seq=original.sequence,
        subject=original.subject,
    )
