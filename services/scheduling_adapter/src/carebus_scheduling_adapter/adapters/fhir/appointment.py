"""FHIR R4 Appointment → canonical appointment (or appointment request) event.  Pure: no
I/O, no clock.

Rules worth knowing:

* Status: proposed, pending, waitlist and booked are ``booked`` (as SCH-25 "Pending" is for
  HL7); arrived and checked-in are ``checked_in``; fulfilled is ``completed``; noshow is
  ``no_show``; cancelled and entered-in-error are ``cancelled`` (the latter with reason
  "entered-in-error").  A create (POST) of a booked appointment is ``booked``, an update
  (PUT) ``modified``; the other statuses are their own event whatever the interaction.
* Appointment id: the filler identifier (type FILL), else the placer's (PLAC), else the first
  identifier, else the FHIR id: the same id HL7 SCH-2/SCH-1 gives, so both channels agree.
* Participants: the Patient's MR identifier (else its first identifier, else the literal
  reference id) is the patient reference; the first Practitioner (or PractitionerRole's
  practitioner) gives the provider code, its NPI first; the first Location gives the location
  code (identifier, else name).  References are resolved inside the Bundle; one that cannot
  be resolved contributes its logical id, for the master-data validator to judge.
* Department = specialty; service = serviceType, else the code of a basedOn ServiceRequest.
* An Appointment without start and end (R4 app-2: both or neither) is an appointment
  *request* when R4 allows that (app-3: proposed, waitlist, cancelled): ``requested`` for a
  proposed or waitlisted one, ``request_cancelled`` for a cancelled one, with the requested
  days (requestedPeriod) and minutesDuration.  Any other status still needs its time.
* Event id: ``fhir:<source>:<FHIR id>:<meta.versionId>``; without a versionId, a hash of the
  resource's content stands in, so a retransmitted request is de-duplicated by JetStream.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

import msgspec

from carebus_contracts import Event
from carebus_contracts import scheduling as s
from carebus_contracts.checks import ContractViolation
from carebus_scheduling_adapter.adapters.fhir.resources import (
    Appointment,
    CodeableConcept,
    ContextResource,
    Identifier,
    Reference,
)
from carebus_scheduling_adapter.domain.appointments import appointment_event
from carebus_shared.fhir.outcome import CODE_INVALID, REQUIRED, VALUE, FhirProblem

NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"
_NPI_OID: Final = "urn:oid:2.16.840.1.113883.4.6"

# FHIR status → (canonical status, event kind or None when the interaction decides, reason)
STATUS: Final[dict[str, tuple[str, str | None, str | None]]] = {
    "proposed": ("booked", None, None),
    "pending": ("booked", None, None),
    "waitlist": ("booked", None, None),
    "booked": ("booked", None, None),
    "arrived": ("checked_in", "checked_in", None),
    "checked-in": ("checked_in", "checked_in", None),
    "fulfilled": ("completed", "completed", None),
    "cancelled": ("cancelled", "cancelled", "cancelled"),
    "noshow": ("no_show", "no_show", None),
    "entered-in-error": ("cancelled", "cancelled", "entered-in-error"),
}
_INTERACTION_EVENT: Final = {"POST": "booked", "PUT": "modified"}
# FHIR statuses an Appointment may have without start and end (R4 invariant app-3), as the
# request it then is, and the event of each.
REQUEST_STATUS: Final = {
    "proposed": s.AppointmentRequestStatus.PROPOSED,
    "waitlist": s.AppointmentRequestStatus.WAITLIST,
    "cancelled": s.AppointmentRequestStatus.CANCELLED,
}
REQUEST_EVENTS: Final = {
    s.AppointmentRequestStatus.PROPOSED: "requested",
    s.AppointmentRequestStatus.WAITLIST: "requested",
    s.AppointmentRequestStatus.CANCELLED: "request_cancelled",
}
_YEAR: Final = re.compile(r"[0-9]{4}")
_YEAR_MONTH: Final = re.compile(r"[0-9]{4}-[0-9]{2}")


@dataclass(frozen=True)
class FhirSource:
    """Who sent the request and when it arrived (the request's, not the resource's, facts)."""

    source_system: str
    site: str | None
    received_at: datetime


@dataclass(frozen=True)
class BundleContext:
    """Resources of the enclosing Bundle, by fullUrl and by ``Type/id``."""

    resources: Mapping[str, ContextResource] = field(default_factory=dict)

    def resolve(self, ref: Reference | None) -> ContextResource | None:
        if ref is None or not ref.reference:
            return None
        found = self.resources.get(ref.reference)
        if found is None and "/" in ref.reference:
            # An absolute URL (https://host/fhir/Practitioner/1) ends in Type/id.
            found = self.resources.get("/".join(ref.reference.rsplit("/", 2)[-2:]))
        return found


def appointment_to_event(
    appt: Appointment,
    *,
    raw: bytes,
    method: str,
    fhir_id: str | None,
    source: FhirSource,
    context: BundleContext | None = None,
) -> Event:
    """Map one Appointment; raises :class:`FhirProblem` located at ``Appointment.<path>``."""
    if appt.resource_type != "Appointment":
        raise FhirProblem(
            "wrong_resource_type",
            "resourceType must be Appointment",
            code=VALUE,
            expression="resourceType",
            value=appt.resource_type,
            status=400,
        )
    ctx = context or BundleContext()
    status, forced_event, default_reason = _status(appt.status)
    request_status = _request_status(appt)
    slot = None if request_status is not None else _slot(appt)
    fhir_id = fhir_id or appt.id
    appointment_id = _appointment_id(appt, fhir_id)
    version = (appt.meta.version_id if appt.meta else None) or content_hash(raw)
    updated = (
        _instant(appt.meta.last_updated, "Appointment.meta.lastUpdated") if appt.meta else None
    )
    occurred = updated or source.received_at
    common: dict[str, Any] = {
        "appointment_id": appointment_id,
        "patient_ref": _patient_ref(appt, ctx),
        "provider_code": _provider_code(appt, ctx),
        "location_code": _location_code(appt, ctx),
        "department_code": _first_code(appt.specialty),
        "service_code": _first_code(appt.service_type) or _service_request_code(appt, ctx),
        "reason": _reason(appt, status, default_reason),
    }
    body: s.Appointment | s.AppointmentRequest
    if slot is None:
        assert request_status is not None
        kind = REQUEST_EVENTS[request_status]
        requested_from, requested_to = _requested_days(appt)
        body = s.AppointmentRequest(
            **common,
            status=request_status,
            requested_from=requested_from,
            requested_to=requested_to,
            duration_minutes=appt.minutes_duration,
        )
    else:
        kind = forced_event or _INTERACTION_EVENT[method]
        body = s.Appointment(
            **common, slot_start=slot[0], slot_end=slot[1], status=s.AppointmentStatus(status)
        )
    try:
        return appointment_event(
            kind,
            body,
            event_id=f"fhir:{source.source_system}:{fhir_id or appointment_id}:{version}",
            occurred_at=occurred,
            recorded_at=source.received_at,
            source_system=source.source_system,
            site=source.site,
            entity_version=int(occurred.timestamp() * 1000),
        )
    except ContractViolation as exc:
        raise FhirProblem(
            "contract_violation", f"the appointment breaks its contract: {exc}", code=VALUE
        ) from exc


def id_and_version(event: Event) -> tuple[str, str]:
    """The FHIR id and version an event of :func:`appointment_to_event` was made from."""
    # fhir:<source>:<id>:<version>; FHIR ids and versions never contain ':'.
    _, fhir_id, version = event.event_id.rsplit(":", 2)
    return fhir_id, version


def content_hash(raw: bytes) -> str:
    """A hash of the JSON content, insensitive to whitespace and member order."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(raw), order="sorted")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        canonical = raw
    return hashlib.blake2b(canonical, digest_size=10).hexdigest()


def _status(value: str | None) -> tuple[str, str | None, str | None]:
    if not value:
        raise FhirProblem(
            "missing_status", "Appointment.status is required", code=REQUIRED,
            expression="Appointment.status",
        )  # fmt: skip
    found = STATUS.get(value)
    if found is None:
        raise FhirProblem(
            # The value is kept as the offending value (access-controlled), never quoted here.
            "unknown_status", "not an R4 appointment status",
            code=CODE_INVALID, expression="Appointment.status", value=value,
        )  # fmt: skip
    return found


def _instant(text: str | None, where: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FhirProblem(
            "invalid_datetime", "not a FHIR instant (YYYY-MM-DDThh:mm:ss with its offset)",
            code=VALUE,
            expression=where, value=text,
        ) from exc  # fmt: skip
    if value.tzinfo is None:
        raise FhirProblem(
            "datetime_without_zone", "an instant must carry a time zone offset", code=VALUE,
            expression=where, value=text,
        )  # fmt: skip
    return value


def _request_status(appt: Appointment) -> s.AppointmentRequestStatus | None:
    """The request an Appointment without start and end is (R4 app-2: both or neither;
    app-3: only proposed, waitlist and cancelled may have neither); None when it has a time
    or may not lack one (its slot is then read, and refused, as any other)."""
    if appt.start is not None or appt.end is not None:
        return None
    return REQUEST_STATUS.get(appt.status or "")


def _day(text: str, where: str, *, last: bool) -> date:
    """The first (or ``last``) day a FHIR date or dateTime covers: ``2025``, ``2025-03``,
    ``2025-03-17`` or an instant (its day in its own offset)."""
    if len(text) > 10:
        moment = _instant(text, where)
        assert moment is not None
        return moment.date()
    try:
        if _YEAR.fullmatch(text):
            return date(int(text), 12, 31) if last else date(int(text), 1, 1)
        if _YEAR_MONTH.fullmatch(text):
            year, month = int(text[:4]), int(text[5:])
            day = calendar.monthrange(year, month)[1] if last else 1
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise FhirProblem(
            "invalid_datetime",
            "not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or an instant)", code=VALUE,
            expression=where, value=text,
        ) from exc  # fmt: skip


def _requested_days(appt: Appointment) -> tuple[date | None, date | None]:
    """The first and last day of the requested periods (None when a period is open there)."""
    starts: list[date | None] = []
    ends: list[date | None] = []
    for n, period in enumerate(appt.requested_period):
        where = f"Appointment.requestedPeriod[{n}]"
        start = _day(period.start, f"{where}.start", last=False) if period.start else None
        end = _day(period.end, f"{where}.end", last=True) if period.end else None
        if start is not None and end is not None and end < start:
            raise FhirProblem(
                "period_ends_before_start", "the requested period ends before it starts",
                code=VALUE, expression=f"{where}.end", value=period.end,
            )  # fmt: skip
        starts.append(start)
        ends.append(end)
    if not starts:
        return None, None
    first = None if None in starts else min(d for d in starts if d is not None)
    last = None if None in ends else max(d for d in ends if d is not None)
    return first, last


def _slot(appt: Appointment) -> tuple[datetime, datetime]:
    start = _instant(appt.start, "Appointment.start")
    if start is None:
        raise FhirProblem(
            "missing_start", "the appointment has no start", code=REQUIRED,
            expression="Appointment.start",
        )  # fmt: skip
    end = _instant(appt.end, "Appointment.end")
    if end is None:
        if appt.minutes_duration is None or appt.minutes_duration < 1:
            raise FhirProblem(
                "missing_end", "the appointment has neither an end nor minutesDuration",
                code=REQUIRED, expression="Appointment.end",
            )  # fmt: skip
        try:
            end = start + timedelta(minutes=appt.minutes_duration)
        except OverflowError:
            raise FhirProblem(
                "invalid_duration", "minutesDuration ends the appointment after year 9999",
                code=VALUE, expression="Appointment.minutesDuration",
            ) from None  # fmt: skip
    if end < start:
        raise FhirProblem(
            "slot_ends_before_start", "the appointment ends before it starts", code=VALUE,
            expression="Appointment.end", value=appt.end,
        )  # fmt: skip
    return start, end


def _identifier_of_type(identifiers: list[Identifier], code: str) -> str | None:
    for ident in identifiers:
        if ident.value and ident.type is not None and ident.type.has_code(code):
            return ident.value
    return None


def _appointment_id(appt: Appointment, fhir_id: str | None) -> str:
    found = (
        _identifier_of_type(appt.identifier, "FILL")
        or _identifier_of_type(appt.identifier, "PLAC")
        or next((i.value for i in appt.identifier if i.value), None)
        or fhir_id
    )
    if not found:
        raise FhirProblem(
            "missing_appointment_id", "the appointment has neither an identifier nor an id",
            code=REQUIRED, expression="Appointment.identifier",
        )  # fmt: skip
    return found


def _actor_type(ref: Reference | None, ctx: BundleContext) -> str | None:
    resolved = ctx.resolve(ref)
    if resolved is not None:
        return resolved.resource_type
    if ref is not None and ref.reference and "/" in ref.reference:
        return ref.reference.rsplit("/", 2)[-2]
    return None


def _literal_id(ref: Reference) -> str | None:
    if ref.identifier is not None and ref.identifier.value:
        return ref.identifier.value
    if not ref.reference:
        return None
    return ref.reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:") or None


def _actors(appt: Appointment, ctx: BundleContext, *types: str) -> list[Reference]:
    return [
        p.actor
        for p in appt.participant
        if p.actor is not None and _actor_type(p.actor, ctx) in types
    ]


def _patient_ref(appt: Appointment, ctx: BundleContext) -> str:
    for ref in _actors(appt, ctx, "Patient"):
        patient = ctx.resolve(ref)
        if patient is not None:
            found = _identifier_of_type(patient.identifier, "MR") or next(
                (i.value for i in patient.identifier if i.value), None
            )
            if found:
                return found
        literal = _literal_id(ref)
        if literal:
            return literal
    raise FhirProblem(
        "missing_patient", "no participant is a Patient", code=REQUIRED,
        expression="Appointment.participant",
    )  # fmt: skip


def _provider_code(appt: Appointment, ctx: BundleContext) -> str | None:
    for ref in _actors(appt, ctx, "Practitioner", "PractitionerRole"):
        person = ctx.resolve(ref)
        if person is not None and person.resource_type == "PractitionerRole":
            ref = person.practitioner or ref
            person = ctx.resolve(person.practitioner)
        if person is not None:
            npi = next(
                (i.value for i in person.identifier if i.system in (NPI_SYSTEM, _NPI_OID)),
                None,
            )
            found = npi or next((i.value for i in person.identifier if i.value), None)
            if found:
                return found
        literal = _literal_id(ref)
        if literal:
            return literal
    return None


def _location_code(appt: Appointment, ctx: BundleContext) -> str | None:
    for ref in _actors(appt, ctx, "Location"):
        place = ctx.resolve(ref)
        if place is not None:
            found = next((i.value for i in place.identifier if i.value), None)
            if found:
                return found
            if isinstance(place.name, str) and place.name:
                return place.name
        literal = _literal_id(ref)
        if literal:
            return literal
    return None


def _service_request_code(appt: Appointment, ctx: BundleContext) -> str | None:
    for ref in appt.based_on:
        request = ctx.resolve(ref)
        if request is not None and request.code is not None:
            found = request.code.first_code()
            if found:
                return found
    return None


def _first_code(concepts: list[CodeableConcept]) -> str | None:
    return next((code for c in concepts if (code := c.first_code())), None)


def _reason(appt: Appointment, status: str, default: str | None) -> str | None:
    if default == "entered-in-error":
        return default
    if status in ("cancelled", "no_show"):
        given = appt.cancelation_reason.label() if appt.cancelation_reason else None
        return given or default
    return next((label for c in appt.reason_code if (label := c.label())), None)
