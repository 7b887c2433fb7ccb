"""Resolving an event's references for its date, and enriching it (pure).

Each source code is resolved in this order: the source system's cross-reference in effect
on the event's date, else the code as a canonical id, else (providers) the code as an NPI.
The record found must be active and in effect on that date. What does not resolve becomes a
:class:`Failure` with a specific reason and the *wait keys* of the master data that could
fix it, so that the quarantine can release the event as soon as that data arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Final, TypeVar

from carebus_contracts.billing import (
    AdjustmentPosted,
    ChargePosted,
    ChargeReversed,
    ClaimAdjudicatedV2,
    PaymentPosted,
)
from carebus_contracts.envelope import Event
from carebus_contracts.masterdata import (
    CostCentre,
    Department,
    EntityKind,
    Location,
    Payer,
    PayerClass,
    Provider,
    Service,
)
from carebus_contracts.scheduling import Appointment, AppointmentRequest
from carebus_contracts.validated import Enrichment
from carebus_masterdata_validator.domain.kinds import Dated, Record
from carebus_masterdata_validator.domain.npi import looks_like_npi, npi_check_digit_ok
from carebus_masterdata_validator.domain.view import (
    MasterDataView,
    entity_key,
    in_effect,
    npi_key,
    xref_key,
)

R = TypeVar("R")
D = TypeVar("D", bound=Dated)


# Reference and EventReferences are built for every event, and never changed after: they are
# not frozen only because a frozen dataclass is slower to construct (docs/decisions/011).
@dataclass(slots=True)
class Reference:
    kind: EntityKind
    code: str
    path: str  # JSON path in the source event, e.g. "$.appointment.provider_code"
    enriches: bool = True  # False: checked only (a claim's service lines)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str  # e.g. "unknown_provider"
    path: str
    offending_value: str
    message: str
    wait_keys: tuple[str, ...]


@dataclass(slots=True)
class EventReferences:
    on: date  # the date every reference must be in effect on
    references: tuple[Reference, ...]
    self_pay: bool = False  # a payment without a payer


@dataclass(slots=True)
class Validation:
    enrichment: Enrichment | None
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class NotValidated(TypeError):
    """The event is of a type the validator does not handle."""


# The coded fields of an appointment (or appointment request) and of a charge: (kind, field
# name, JSON path), in the order their references are checked. Built once, not per event.
_APPOINTMENT_CODES: Final = (
    (EntityKind.PROVIDER, "provider_code"),
    (EntityKind.LOCATION, "location_code"),
    (EntityKind.DEPARTMENT, "department_code"),
    (EntityKind.SERVICE, "service_code"),
)
_APPOINTMENT_FIELDS: Final = tuple(
    (kind, name, f"$.appointment.{name}") for kind, name in _APPOINTMENT_CODES
)
_REQUEST_FIELDS: Final = tuple(
    (kind, name, f"$.request.{name}") for kind, name in _APPOINTMENT_CODES
)
_CHARGE_FIELDS: Final = tuple(
    (kind, name, f"$.charge.{name}")
    for kind, name in (
        (EntityKind.PROVIDER, "performing_provider_code"),
        (EntityKind.LOCATION, "location_code"),
        (EntityKind.DEPARTMENT, "department_code"),
        (EntityKind.SERVICE, "service_code"),
        (EntityKind.PAYER, "payer_code"),
    )
)


def _coded_refs(
    body: object, fields: tuple[tuple[EntityKind, str, str], ...]
) -> Iterator[Reference]:
    for kind, name, path in fields:
        code = getattr(body, name)
        if code:
            yield Reference(kind, code, path)


def references_of(event: Event) -> EventReferences:
    """The references of ``event`` and the date they must be in effect on."""
    appointment = getattr(event, "appointment", None)
    if isinstance(appointment, Appointment):
        # The slot's own offset is the sender's local time: its date is the visit date.
        return EventReferences(
            appointment.slot_start.date(), tuple(_coded_refs(appointment, _APPOINTMENT_FIELDS))
        )
    request = getattr(event, "request", None)
    if isinstance(request, AppointmentRequest):
        # No slot: the first day asked for, else the day the request (or its cancellation)
        # was made.
        on = request.requested_from or event.occurred_at.date()
        return EventReferences(on, tuple(_coded_refs(request, _REQUEST_FIELDS)))
    match event:
        case ChargePosted() | ChargeReversed():
            refs = tuple(_coded_refs(event.charge, _CHARGE_FIELDS))
            return EventReferences(event.charge.service_date, refs)
        case PaymentPosted():
            if event.payer_code:
                payer = Reference(EntityKind.PAYER, event.payer_code, "$.payer_code")
                return EventReferences(event.received_on, (payer,))
            return EventReferences(event.received_on, (), self_pay=True)
        case AdjustmentPosted():
            if event.payer_code:
                payer = Reference(EntityKind.PAYER, event.payer_code, "$.payer_code")
                return EventReferences(event.occurred_at.date(), (payer,))
            return EventReferences(event.occurred_at.date(), ())
        case ClaimAdjudicatedV2():
            lines = tuple(
                Reference(
                    EntityKind.SERVICE,
                    line.service_code,
                    f"$.service_lines[{i}].service_code",
                    enriches=False,
                )
                for i, line in enumerate(event.service_lines)
            )
            payer = Reference(EntityKind.PAYER, event.payer_code, "$.payer_code")
            return EventReferences(event.adjudicated_on, (payer, *lines))
    raise NotValidated(f"{type(event).__name__} is not validated by master data")


def _lookup(
    view: MasterDataView, source_system: str, ref: Reference, on: date
) -> tuple[Record | None, Failure | None]:
    kind, code = ref.kind, ref.code
    canonical: str | None = None
    by_npi = False  # whether the code was tried as an NPI (its wait key then counts)
    xref = view.xrefs.get((source_system, kind, code))
    if xref is not None and in_effect(xref, on):
        canonical = xref.canonical_id
    elif view.get(kind, code) is not None:
        canonical = code
    elif kind is EntityKind.PROVIDER and looks_like_npi(code):
        by_npi = True
        if not npi_check_digit_ok(code):
            return None, Failure(
                "invalid_npi",
                ref.path,
                code,
                f"provider code from {source_system} is not a valid NPI (check digit) "
                "and has no cross-reference",
                _wait_keys(source_system, ref, None, by_npi),
            )
        canonical = view.provider_by_npi.get(code)
    record = view.get(kind, canonical) if canonical is not None else None
    if record is not None and in_effect(record, on):
        return record, None  # the common case: no failure, so no wait keys to build
    label = kind.value.replace("_", " ")
    waits = _wait_keys(source_system, ref, canonical, by_npi)
    if record is None:
        via = f" (cross-referenced to {canonical!r})" if canonical and canonical != code else ""
        return None, Failure(
            f"unknown_{kind.value}",
            ref.path,
            code,
            f"{label} code from {source_system}{via} matches no {label}",
            waits,
        )
    state = "deactivated" if not record.active else "not in effect"
    return None, Failure(
        f"inactive_{kind.value}",
        ref.path,
        code,
        f"{label} {canonical!r} is {state} on {on.isoformat()} "
        f"(valid {record.valid_from or '…'} to {record.valid_to or '…'})",
        waits,
    )


def _wait_keys(
    source_system: str, ref: Reference, canonical: str | None, by_npi: bool
) -> tuple[str, ...]:
    """The master data whose change could resolve ``ref``: its cross-reference, the code as a
    canonical id, the code as an NPI (when tried), and the canonical id it led to."""
    waits = [xref_key(source_system, ref.kind, ref.code), entity_key(ref.kind, ref.code)]
    if by_npi:
        waits.append(npi_key(ref.code))
    if canonical is not None and canonical != ref.code:
        waits.append(entity_key(ref.kind, canonical))
    return tuple(waits)


def _cost_centre(
    view: MasterDataView, cost_centre_id: str, via: Reference, on: date
) -> tuple[CostCentre | None, Failure | None]:
    record = view.cost_centres.get(cost_centre_id)
    if record is None:
        reason, state = "unknown_cost_centre", "does not exist"
    elif not in_effect(record, on):
        reason, state = "inactive_cost_centre", f"is not in effect on {on.isoformat()}"
    else:
        return record, None
    message = f"cost centre {cost_centre_id!r} of the {via.kind.value} {state}"
    waits = (entity_key(EntityKind.COST_CENTRE, cost_centre_id),)
    return None, Failure(reason, via.path, cost_centre_id, message, waits)


def validate(view: MasterDataView, event: Event) -> Validation:
    """Resolve every reference of ``event`` on its date; enrich, or say what failed."""
    refs = references_of(event)
    failures: list[Failure] = []
    found: dict[EntityKind, tuple[Reference, Record]] = {}
    for ref in refs.references:
        record, failure = _lookup(view, event.source_system, ref, refs.on)
        if failure is not None:
            failures.append(failure)
        elif record is not None and ref.enriches and ref.kind not in found:
            found[ref.kind] = (ref, record)

    provider = _as(found, EntityKind.PROVIDER, Provider)
    location = _as(found, EntityKind.LOCATION, Location)
    department = _as(found, EntityKind.DEPARTMENT, Department)
    if department is None and provider is not None and provider.department_id:
        # The provider's home department, when the event names none and it is in effect.
        department = _if_in_effect(view.departments.get(provider.department_id), refs.on)
    if location is None and department is not None and department.location_id:
        # Where the department is, when the event names no place (a FHIR ChargeItem has none).
        location = _if_in_effect(view.locations.get(department.location_id), refs.on)
    service = _as(found, EntityKind.SERVICE, Service)
    payer = _as(found, EntityKind.PAYER, Payer)

    cost_centre: CostCentre | None = None
    dimension_source = found.get(EntityKind.DEPARTMENT) or found.get(EntityKind.LOCATION)
    cost_centre_id = (department.cost_centre_id if department else None) or (
        location.cost_centre_id if location else None
    )
    if cost_centre_id and not failures:
        via = dimension_source[0] if dimension_source else refs.references[0]
        cost_centre, failure = _cost_centre(view, cost_centre_id, via, refs.on)
        if failure is not None:
            failures.append(failure)
    if failures:
        return Validation(None, failures)
    payer_class = payer.payer_class if payer else (PayerClass.SELF_PAY if refs.self_pay else None)
    return Validation(
        Enrichment(
            provider_id=provider.provider_id if provider else None,
            provider_npi=provider.npi if provider else None,
            location_id=location.location_id if location else None,
            department_id=department.department_id if department else None,
            service_code=service.service_code if service else None,
            payer_id=payer.payer_id if payer else None,
            cost_centre=cost_centre.cost_centre_id if cost_centre else None,
            payer_class=payer_class,
            place_of_service=location.place_of_service if location else None,
            time_zone=location.time_zone if location else None,
        )
    )


def _if_in_effect(record: D | None, on: date) -> D | None:
    return record if record is not None and in_effect(record, on) else None


def _as(
    found: dict[EntityKind, tuple[Reference, Record]], kind: EntityKind, cls: type[R]
) -> R | None:
    held = found.get(kind)
    if held is None or not isinstance(held[1], cls):
        return None
    return held[1]
