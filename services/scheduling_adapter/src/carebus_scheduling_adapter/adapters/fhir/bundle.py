"""A FHIR transaction or batch Bundle → one outcome per entry.  Pure.

Appointment entries (request POST or PUT) become events; every other resource is context,
read only to resolve the appointments' participants (the Patient's MRN, the Practitioner's
NPI, the Location's code) and not stored: carebus is not a FHIR server.  A Bundle without
any Appointment is refused (``no_appointment``), e.g. a billing (DFT/BAR) conversion.
Reading the Bundle, and whether one bad entry fails the whole Bundle (transaction) or only
itself (batch), are the shared ``carebus_shared.fhir.bundle``'s.
"""

from __future__ import annotations

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.fhir.appointment import (
    BundleContext,
    FhirSource,
    appointment_to_event,
    id_and_version,
)
from carebus_scheduling_adapter.adapters.fhir.resources import Appointment, ContextResource
from carebus_shared.fhir.bundle import (
    Bundle,
    BundleEntry,
    BundleResult,
    EntryResult,
    entry_request,
    read_bundle,
)
from carebus_shared.fhir.decoding import ResourceHead, decode
from carebus_shared.fhir.outcome import NOT_SUPPORTED, FhirProblem


def read_appointments(raw: bytes, source: FhirSource) -> BundleResult:
    """Raises :class:`FhirProblem` when the Bundle as a whole is unacceptable."""
    bundle = read_bundle(raw)
    kinds, context = _context(bundle)
    if "Appointment" not in kinds.values():
        raise FhirProblem(
            "no_appointment", "the Bundle carries no Appointment: nothing for scheduling",
            code=NOT_SUPPORTED, expression="Bundle.entry",
        )  # fmt: skip
    assert bundle.type is not None  # read_bundle checked it
    results = []
    for index, entry in enumerate(bundle.entry):
        kind = kinds.get(index)
        if kind != "Appointment":
            results.append(EntryResult(index, kind))
            continue
        try:
            event = _appointment_entry(index, entry, source, context)
        except FhirProblem as problem:
            results.append(EntryResult(index, kind, problem=problem))
        else:
            fhir_id, version = id_and_version(event)
            results.append(
                EntryResult(
                    index, kind, (event,), location=f"Appointment/{fhir_id}/_history/{version}",
                    etag=f'W/"{version}"',
                )
            )  # fmt: skip
    return BundleResult(bundle.type, tuple(results))


def _context(bundle: Bundle) -> tuple[dict[int, str], BundleContext]:
    kinds: dict[int, str] = {}
    by_reference: dict[str, ContextResource] = {}
    for index, entry in enumerate(bundle.entry):
        if not entry.resource:
            continue
        where = f"Bundle.entry[{index}].resource"
        try:
            resource = decode(entry.resource, ContextResource, where)
        except FhirProblem:
            # Some resource types shape these elements differently (a single identifier,
            # a code that is not a CodeableConcept): such a resource only names its kind.
            head = decode(entry.resource, ResourceHead, where)
            if head.resource_type:
                kinds[index] = head.resource_type
            continue
        kinds[index] = resource.resource_type
        if entry.full_url:
            by_reference[entry.full_url] = resource
        if resource.id:
            by_reference[f"{resource.resource_type}/{resource.id}"] = resource
    return kinds, BundleContext(by_reference)


def _appointment_entry(
    index: int, entry: BundleEntry, source: FhirSource, context: BundleContext
) -> Event:
    where = f"Bundle.entry[{index}]"
    request = entry_request(index, entry, "Appointment")
    raw = bytes(entry.resource)
    appt = decode(raw, Appointment, f"{where}.resource")
    try:
        return appointment_to_event(
            appt, raw=raw, method=request.method, fhir_id=request.url_id, source=source,
            context=context,
        )  # fmt: skip
    except FhirProblem as problem:
        raise problem.at(f"{where}.resource") from None
