"""Scheduling domain, v1: appointment lifecycle events from the scheduling system.

Every event carries the full appointment as the source knows it after the change, so a
consumer never needs an earlier event to act on a later one.  Codes are the *source
system's* codes; the master-data validator maps them to canonical ids.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from carebus_contracts.envelope import AwareDatetime, Contract, Event, NonEmptyStr, SchemaVersion


class AppointmentStatus(enum.StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"


class Appointment(Contract, frozen=True, kw_only=True):
    appointment_id: NonEmptyStr
    patient_ref: NonEmptyStr
    """An opaque patient reference (e.g. MRN); no other patient data travels on the bus."""
    provider_code: str | None = None
    location_code: str | None = None
    department_code: str | None = None
    service_code: str | None = None
    slot_start: AwareDatetime
    slot_end: AwareDatetime
    status: AppointmentStatus
    reason: str | None = None
    """Visit reason, or the cancellation / no-show reason for those events."""


class AppointmentBooked(Event, tag="scheduling.appointment.booked", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentRescheduled(
    Event, tag="scheduling.appointment.rescheduled", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment
    previous_slot_start: AwareDatetime | None = None
    previous_slot_end: AwareDatetime | None = None


class AppointmentModified(Event, tag="scheduling.appointment.modified", frozen=True, kw_only=True):
    """A change that is not a new time: provider, location, service or reason."""

    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentCancelled(
    Event, tag="scheduling.appointment.cancelled", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentNoShow(Event, tag="scheduling.appointment.no_show", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentCheckedIn(
    Event, tag="scheduling.appointment.checked_in", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentCompleted(
    Event, tag="scheduling.appointment.completed", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"
    appointment: Appointment


class AppointmentRequestStatus(enum.StrEnum):
    PROPOSED = "proposed"
    WAITLIST = "waitlist"
    CANCELLED = "cancelled"


class AppointmentRequest(Contract, frozen=True, kw_only=True):
    """An appointment asked for but not (or no longer) given a time: FHIR R4 lets a proposed,
    waitlisted or cancelled Appointment lack ``start`` and ``end`` (invariant app-3).  The
    same ``appointment_id`` as the appointment it may become."""

    appointment_id: NonEmptyStr
    patient_ref: NonEmptyStr
    """An opaque patient reference (e.g. MRN); no other patient data travels on the bus."""
    provider_code: str | None = None
    location_code: str | None = None
    department_code: str | None = None
    service_code: str | None = None
    status: AppointmentRequestStatus
    requested_from: dt.date | None = None
    """The first day the appointment is asked for (the requested periods' earliest start)."""
    requested_to: dt.date | None = None
    """The last day the appointment is asked for (the requested periods' latest end)."""
    duration_minutes: Annotated[int, msgspec.Meta(ge=1)] | None = None
    reason: str | None = None
    """Visit reason, or the cancellation reason of a cancelled request."""


class AppointmentRequested(
    Event, tag="scheduling.appointment.requested", frozen=True, kw_only=True
):
    """An appointment request: proposed or waitlisted, without a time yet.  Tracked, not
    posted: it has no visit date and no expected revenue."""

    schema_version: SchemaVersion = "1.0"
    request: AppointmentRequest


class AppointmentRequestCancelled(
    Event, tag="scheduling.appointment.request_cancelled", frozen=True, kw_only=True
):
    """An appointment cancelled without a time: a request withdrawn (or an appointment whose
    sender no longer gives its time)."""

    schema_version: SchemaVersion = "1.0"
    request: AppointmentRequest


SCHEDULING_EVENTS: tuple[type[Event], ...] = (
    AppointmentBooked,
    AppointmentRescheduled,
    AppointmentModified,
    AppointmentCancelled,
    AppointmentNoShow,
    AppointmentCheckedIn,
    AppointmentCompleted,
    AppointmentRequested,
    AppointmentRequestCancelled,
)
