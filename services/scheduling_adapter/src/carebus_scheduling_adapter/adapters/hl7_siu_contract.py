""":class:`SiuAppointment` → versioned ``carebus_contracts.scheduling`` event.

Defaults make re-sends idempotent: ``event_id`` is derived from sender + MSH-10 (so
JetStream's ``Nats-Msg-Id`` de-duplication drops a retried message), and
``entity_version`` from MSH-7 in milliseconds (later messages about the same appointment
carry later MSH-7).  Callers with a better source of either may pass it explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_contracts.subjects import UNKNOWN_SITE
from carebus_scheduling_adapter.adapters.hl7_siu import SiuAppointment

_EVENTS: Final[dict[str, Callable[..., Event]]] = {
    "booked": s.AppointmentBooked,
    "rescheduled": s.AppointmentRescheduled,
    "modified": s.AppointmentModified,
    "cancelled": s.AppointmentCancelled,
    "no_show": s.AppointmentNoShow,
    "checked_in": s.AppointmentCheckedIn,
    "completed": s.AppointmentCompleted,
}
# Who is "the" provider of an appointment, most specific first.
_PROVIDER_ROLES: Final = ("performer", "attending", "resource", "filler_contact", "placer_contact")


def event_id_for(appt: SiuAppointment) -> str:
    return f"hl7:{appt.source_system}:{appt.site or ''}:{appt.control_id}"


def to_contract(
    appt: SiuAppointment,
    *,
    recorded_at: datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    entity_version: int | None = None,
) -> Event:
    event_id = event_id or event_id_for(appt)
    appointment = s.Appointment(
        appointment_id=appt.appointment_id,
        patient_ref=appt.patient.id,
        provider_code=_provider_code(appt),
        location_code=(appt.location.point_of_care or appt.location.facility)
        if appt.location
        else None,
        department_code=appt.department.code if appt.department else None,
        service_code=appt.service.code if appt.service else None,
        slot_start=appt.start,
        slot_end=appt.end,
        status=s.AppointmentStatus(appt.status),
        reason=_reason(appt),
    )
    return _EVENTS[appt.event](
        event_id=event_id,
        occurred_at=appt.message_datetime,
        recorded_at=recorded_at,
        source_system=appt.source_system,
        site=appt.site or UNKNOWN_SITE,
        correlation_id=correlation_id or event_id,
        entity_key=appt.appointment_id,
        entity_version=entity_version
        if entity_version is not None
        else int(appt.message_datetime.timestamp() * 1000),
        appointment=appointment,
    )


def _provider_code(appt: SiuAppointment) -> str | None:
    for role in _PROVIDER_ROLES:
        for provider in appt.providers:
            if provider.role == role:
                return provider.id
    return None


def _reason(appt: SiuAppointment) -> str | None:
    if appt.status == "cancelled":
        return appt.cancellation_reason
    chosen = appt.event_reason if appt.status == "no_show" else appt.reason
    return (chosen.text or chosen.code) if chosen else None
