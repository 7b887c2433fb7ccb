"""What every input channel (HL7, FHIR, CSV) builds: one canonical appointment event, or
(FHIR only: an Appointment without a time) an appointment request event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from carebus_contracts import Event
from carebus_contracts import scheduling as s
from carebus_contracts.checks import checked
from carebus_contracts.subjects import UNKNOWN_SITE

# One contract per event kind; a kind is also the last word of the event type.
EVENT_TYPES: Final[dict[str, Callable[..., Event]]] = {
    "booked": s.AppointmentBooked,
    "rescheduled": s.AppointmentRescheduled,
    "modified": s.AppointmentModified,
    "cancelled": s.AppointmentCancelled,
    "no_show": s.AppointmentNoShow,
    "checked_in": s.AppointmentCheckedIn,
    "completed": s.AppointmentCompleted,
    "requested": s.AppointmentRequested,
    "request_cancelled": s.AppointmentRequestCancelled,
}
# Statuses that are themselves the event (a check-in is a check-in whatever the trigger).
STATUS_EVENTS: Final = frozenset({"cancelled", "no_show", "checked_in", "completed"})


def appointment_event(
    kind: str,
    appointment: s.Appointment | s.AppointmentRequest,
    *,
    event_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    source_system: str,
    site: str | None,
    entity_version: int,
) -> Event:
    """The event of ``kind``, checked against its contract (raises ContractViolation)."""
    body = "request" if isinstance(appointment, s.AppointmentRequest) else "appointment"
    return checked(
        EVENT_TYPES[kind](
            event_id=event_id,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            source_system=source_system,
            site=site or UNKNOWN_SITE,
            correlation_id=event_id,
            entity_key=appointment.appointment_id,
            entity_version=entity_version,
            **{body: appointment},
        )
    )
