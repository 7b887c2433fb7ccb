"""HL7 v2 SIU (and ADT carrying an SCH segment) → :class:`SiuAppointment`.

Pure: no I/O, no clock.  The MLLP handler awaits the JetStream publish ack of the
canonical event before answering AA; this module only decides *what* the message says,
or raises :class:`Hl7MappingError` naming the segment and field that prevent it.

Rules worth knowing:

* Trigger events S12 booked, S13 rescheduled, S14 modified, S15 cancelled,
  S16 discontinued → cancelled, S17 deleted → cancelled, S26 no-show.  A status change in
  SCH-25 (checked in, completed, cancelled, no-show) on a non-terminal trigger wins,
  because many systems send S14 for "patient arrived".  Terminal triggers win over
  SCH-25 (some feeds keep SCH-25 "Booked" on S15/S17).
* ADT messages are accepted only when they carry an SCH segment; others are rejected as
  ``unsupported_message_type`` (ADT^A05/A38 appointment feeds without SCH need a
  site-specific mapping that carebus does not guess).
* Slot: TQ1-7/8 (v2.5+), else SCH-11.4/5, else the first AIS/AIG/AIL/AIP start; a
  missing end is start + duration (same resource segment, SCH-9/10, SCH-11.3).
* Timestamps without an offset are read in ``default_tz`` (the sender's zone).
* Z-segments are ignored here; the raw message stays available to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from carebus_shared.hl7.datatypes import (
    CodedValue,
    LocationRef,
    MessageMeta,
    PatientRef,
    ProviderRef,
    coded,
    coded_at,
    loc,
    location_from_pl,
    message_meta,
    patient_from_pid,
    providers_at,
    timestamp_at,
)
from carebus_shared.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    ErrorLocation,
    Hl7MappingError,
)
from carebus_shared.hl7.message import Hl7Message, Segment, parse_message

__all__ = [
    "AppointmentEvent",
    "AppointmentStatus",
    "Hl7MappingError",
    "SiuAppointment",
    "map_siu",
]


class AppointmentStatus:
    """Status values; identical to ``carebus_contracts.scheduling.AppointmentStatus``."""

    BOOKED: Final = "booked"
    CANCELLED: Final = "cancelled"
    NO_SHOW: Final = "no_show"
    CHECKED_IN: Final = "checked_in"
    COMPLETED: Final = "completed"


class AppointmentEvent:
    """What happened; each value is one ``scheduling.appointment.<event>`` contract."""

    BOOKED: Final = "booked"
    RESCHEDULED: Final = "rescheduled"
    MODIFIED: Final = "modified"
    CANCELLED: Final = "cancelled"
    NO_SHOW: Final = "no_show"
    CHECKED_IN: Final = "checked_in"
    COMPLETED: Final = "completed"


_S = AppointmentStatus
_E = AppointmentEvent

# trigger → (event, forced status or None when SCH-25 decides, default cancel reason)
_TRIGGERS: Final[dict[str, tuple[str, str | None, str | None]]] = {
    "S12": (_E.BOOKED, None, None),
    "S13": (_E.RESCHEDULED, None, None),
    "S14": (_E.MODIFIED, None, None),
    "S15": (_E.CANCELLED, _S.CANCELLED, "cancelled"),
    "S16": (_E.CANCELLED, _S.CANCELLED, "discontinued"),
    "S17": (_E.CANCELLED, _S.CANCELLED, "deleted"),
    "S26": (_E.NO_SHOW, _S.NO_SHOW, None),
}

# SCH-25 filler status (HL7 table 0278 plus common vendor words), lower-cased.
_FILLER_STATUS: Final[dict[str, str]] = {
    "booked": _S.BOOKED,
    "confirmed": _S.BOOKED,
    "scheduled": _S.BOOKED,
    "pending": _S.BOOKED,
    "waitlist": _S.BOOKED,
    "overbook": _S.BOOKED,
    "started": _S.CHECKED_IN,
    "arrived": _S.CHECKED_IN,
    "checked in": _S.CHECKED_IN,
    "checkedin": _S.CHECKED_IN,
    "checked-in": _S.CHECKED_IN,
    "complete": _S.COMPLETED,
    "completed": _S.COMPLETED,
    "cancelled": _S.CANCELLED,
    "canceled": _S.CANCELLED,
    "dc": _S.CANCELLED,
    "discontinued": _S.CANCELLED,
    "deleted": _S.CANCELLED,
    "noshow": _S.NO_SHOW,
    "no show": _S.NO_SHOW,
    "no-show": _S.NO_SHOW,
}
_STATUS_CHANGES: Final = {_S.CHECKED_IN, _S.COMPLETED, _S.CANCELLED, _S.NO_SHOW}

_UNIT_SECONDS: Final[dict[str, int]] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_TQ_DURATION: Final = re.compile(r"^(?P<unit>[SMHD])?(?P<value>\d+(?:\.\d+)?)$", re.IGNORECASE)
_TQ_UNITS: Final[dict[str, int]] = {"S": 1, "M": 60, "H": 3600, "D": 86400}
# AIG-4 resource types that are things, not people (their ids are not provider ids).
_NON_PERSON_RESOURCE: Final = re.compile(r"equip|device|room|location|machine", re.IGNORECASE)

# (segment, start field, end field or None, duration field, duration units field)
_TIMING_SOURCES: Final = (
    ("TQ1", 7, 8, 13, None),
    ("SCH", 11, None, None, None),  # TQ: components 4/5, handled separately
    ("AIS", 4, None, 7, 8),
    ("AIG", 8, None, 11, 12),
    ("AIL", 6, None, 9, 10),
    ("AIP", 6, None, 9, 10),
)


class SiuAppointment(msgspec.Struct, frozen=True, kw_only=True):
    """One appointment as the scheduling message states it after the change."""

    control_id: str
    message_datetime: datetime
    message_type: str
    trigger_event: str
    hl7_version: str
    source_system: str
    site: str | None
    appointment_id: str
    placer_appointment_id: str | None
    filler_appointment_id: str | None
    event: str
    status: str
    filler_status: str | None
    start: datetime
    end: datetime
    duration: timedelta
    patient: PatientRef
    visit_number: str | None
    providers: tuple[ProviderRef, ...]
    resources: tuple[CodedValue, ...]
    """Non-person AIG resources (equipment, rooms) kept apart from provider ids."""
    location: LocationRef | None
    department: CodedValue | None
    service: CodedValue | None
    reason: CodedValue | None
    """SCH-7 appointment reason."""
    event_reason: CodedValue | None
    """SCH-6 event reason (why it was cancelled/changed)."""
    cancellation_reason: str | None
    appointment_type: CodedValue | None


def map_siu(message: Hl7Message | bytes | str, *, default_tz: tzinfo | str) -> SiuAppointment:
    """Map one SIU (or ADT-with-SCH) message; raises :class:`Hl7MappingError`."""
    msg = message if isinstance(message, Hl7Message) else parse_message(message)
    event, forced_status, default_cancel = _classify(msg)
    meta: MessageMeta = message_meta(msg, default_tz)
    sch = msg.segment("SCH")
    if sch is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "SCH", "no SCH segment")

    placer, filler = sch.value(1), sch.value(2)
    appointment_id = filler or placer
    if appointment_id is None:
        raise Hl7MappingError(
            REQUIRED_FIELD_MISSING, loc(sch, 2), "no placer (SCH-1) or filler appointment id"
        )

    filler_status = sch.value(25) or sch.value(25, 2)
    status = forced_status or _status_from_sch25(filler_status) or _S.BOOKED
    if forced_status is None and status in _STATUS_CHANGES:
        event = status  # e.g. S14 carrying SCH-25 "Arrived" is a check-in
    event_reason = coded_at(sch, 6)
    cancellation_reason = None
    if status == _S.CANCELLED:
        cancellation_reason = _text(event_reason) or default_cancel or "cancelled"

    start, end = _slot(msg, sch, default_tz)
    pv1 = msg.segment("PV1")
    service = _first_coded(msg.all("AIS"), 3) or coded_at(sch, 7)
    return SiuAppointment(
        control_id=meta.control_id,
        message_datetime=meta.message_datetime,
        message_type=meta.message_type,
        trigger_event=meta.trigger_event,
        hl7_version=meta.version,
        source_system=meta.source_system,
        site=meta.site,
        appointment_id=appointment_id,
        placer_appointment_id=placer,
        filler_appointment_id=filler,
        event=event,
        status=status,
        filler_status=filler_status,
        start=start,
        end=end,
        duration=end - start,
        patient=patient_from_pid(msg),
        visit_number=pv1.value(19) if pv1 else None,
        providers=_providers(msg, sch, pv1),
        resources=tuple(_non_person_resources(msg)),
        location=_location(msg, pv1),
        department=coded_at(pv1, 10),
        service=service,
        reason=coded_at(sch, 7),
        event_reason=event_reason,
        cancellation_reason=cancellation_reason,
        appointment_type=coded_at(sch, 8),
    )


def _classify(msg: Hl7Message) -> tuple[str, str | None, str | None]:
    code, trigger = msg.message_code, msg.trigger_event or ""
    if code == "SIU":
        if trigger not in _TRIGGERS:
            raise Hl7MappingError(
                UNSUPPORTED_EVENT_CODE,
                "MSH-9.2",
                "SIU trigger event is not one carebus takes",
                value=trigger,
            )
        return _TRIGGERS[trigger]
    if code == "ADT" and msg.segment("SCH") is not None:
        return _E.MODIFIED, None, None
    detail = " without an SCH segment" if code == "ADT" else ""
    raise Hl7MappingError(
        UNSUPPORTED_MESSAGE_TYPE,
        "MSH-9",
        f"message type{detail} carries no appointment",
    )


def _status_from_sch25(filler_status: str | None) -> str | None:
    if filler_status is None:
        return None
    return _FILLER_STATUS.get(" ".join(filler_status.lower().split()))


def _slot(msg: Hl7Message, sch: Segment, default_tz: tzinfo | str) -> tuple[datetime, datetime]:
    for name, start_field, end_field, dur_field, unit_field in _TIMING_SOURCES:
        for segment in msg.all(name) if name != "SCH" else [sch]:
            if name == "SCH":
                start = timestamp_at(sch, 11, default_tz, component=4)
                end = timestamp_at(sch, 11, default_tz, component=5)
            else:
                start = timestamp_at(segment, start_field, default_tz)
                end = timestamp_at(segment, end_field, default_tz) if end_field else None
            if start is None:
                continue
            if end is None:
                duration = _duration(segment, dur_field, unit_field) or _sch_duration(sch)
                if duration is None:
                    raise Hl7MappingError(
                        REQUIRED_FIELD_MISSING, loc(sch, 9), "no slot end or duration"
                    )
                try:
                    end = start + duration
                except OverflowError:
                    raise Hl7MappingError(
                        DATA_TYPE_ERROR, loc(sch, 9), "slot end is after year 9999"
                    ) from None
            if end < start:
                raise Hl7MappingError(
                    DATA_TYPE_ERROR, ErrorLocation(segment.name, start_field, segment.index),
                    "slot ends before it starts",
                )  # fmt: skip
            return start, end
    raise Hl7MappingError(REQUIRED_FIELD_MISSING, loc(sch, 11), "no slot start")


def _duration(
    segment: Segment, value_field: int | None, unit_field: int | None
) -> timedelta | None:
    if value_field is None:
        return None
    amount = segment.value(value_field)
    if amount is None:
        return None
    # TQ1-13 is CQ (quantity^units&text); resource segments carry units in a separate CE.
    if unit_field is None:
        unit = segment.value(value_field, 2) or segment.value(value_field, 2, 2)
    else:
        unit = segment.value(unit_field) or segment.value(unit_field, 2)
    return _to_timedelta(amount, unit, loc(segment, value_field))


def _sch_duration(sch: Segment) -> timedelta | None:
    amount = sch.value(9)
    if amount is not None:
        return _to_timedelta(amount, sch.value(10) or sch.value(10, 2), loc(sch, 9))
    tq_duration = sch.value(11, 3)
    match = _TQ_DURATION.match(tq_duration or "")
    if match is None:
        return None
    seconds = _TQ_UNITS[(match["unit"] or "M").upper()]
    return _timedelta(Decimal(match["value"]) * seconds, ErrorLocation("SCH", 11, sch.index, 3))


def _to_timedelta(amount: str, unit: str | None, where: ErrorLocation) -> timedelta:
    try:
        value = Decimal(amount.strip())
    except InvalidOperation as exc:
        raise Hl7MappingError(
            DATA_TYPE_ERROR, where, "duration is not a number", value=amount
        ) from exc
    seconds = _UNIT_SECONDS.get((unit or "min").strip().lower())
    if seconds is None:
        raise Hl7MappingError(
            DATA_TYPE_ERROR, where, "duration unit is not a known unit", value=unit
        )
    if not value.is_finite():
        raise Hl7MappingError(DATA_TYPE_ERROR, where, "duration is not a finite number")
    if value < 0:
        raise Hl7MappingError(DATA_TYPE_ERROR, where, "negative duration")
    if value > _MAX_SECONDS:  # before multiplying: 1E999999999 minutes overflows Decimal
        raise Hl7MappingError(DATA_TYPE_ERROR, where, "duration is out of range")
    return _timedelta(value * seconds, where)


_MAX_SECONDS: Final = Decimal(int(timedelta.max.total_seconds()))


def _timedelta(seconds: Decimal, where: ErrorLocation) -> timedelta:
    """Whole seconds as a timedelta; one longer than any datetime could hold is refused."""
    if seconds > _MAX_SECONDS:
        raise Hl7MappingError(DATA_TYPE_ERROR, where, "duration is out of range")
    return timedelta(seconds=int(seconds))


def _providers(msg: Hl7Message, sch: Segment, pv1: Segment | None) -> tuple[ProviderRef, ...]:
    found: list[ProviderRef] = []
    for aip in msg.all("AIP"):
        found += providers_at(aip, 3, "performer")
    for aig in msg.all("AIG"):
        resource = aig.field(3)
        if resource is None or resource.component(1) is None or _is_thing(aig):
            continue
        found.append(
            ProviderRef(
                role="resource",
                id=resource.component(1) or "",
                name=resource.component(2, None),
                id_type=resource.component(3),
                source=str(loc(aig, 3)),
            )
        )
    for field, role in ((7, "attending"), (8, "referring"), (9, "consulting"), (17, "admitting")):
        found += providers_at(pv1, field, role)
    found += providers_at(sch, 16, "filler_contact")
    found += providers_at(sch, 12, "placer_contact")
    unique: dict[tuple[str, str], ProviderRef] = {}
    for provider in found:
        unique.setdefault((provider.role, provider.id), provider)
    return tuple(unique.values())


def _is_thing(aig: Segment) -> bool:
    kind = " ".join(filter(None, (aig.value(4), aig.value(4, 2, None))))
    return bool(_NON_PERSON_RESOURCE.search(kind))


def _non_person_resources(msg: Hl7Message) -> Iterable[CodedValue]:
    for aig in msg.all("AIG"):
        resource = coded_at(aig, 3)
        if resource is not None and _is_thing(aig):
            yield resource


def _location(msg: Hl7Message, pv1: Segment | None) -> LocationRef | None:
    for ail in msg.all("AIL"):
        found = location_from_pl(ail.field(3), loc(ail, 3))
        if found is not None:
            return found
    return location_from_pl(pv1.field(3), loc(pv1, 3)) if pv1 else None


def _first_coded(segments: list[Segment], n: int) -> CodedValue | None:
    return next((c for c in (coded(s.field(n)) for s in segments) if c is not None), None)


def _text(value: CodedValue | None) -> str | None:
    return (value.text or value.code) if value else None
