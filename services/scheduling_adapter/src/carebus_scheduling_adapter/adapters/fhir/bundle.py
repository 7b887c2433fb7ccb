"""A FHIR transaction or batch Bundle → one outcome per entry.  Pure.

Appointment entries (request POST or PUT) become events; every other resource is context,
read only to resolve the appointments' participants (the Patient's MRN, the Practitioner's
NPI, the Location's code) and not stored: carebus is not a FHIR server.  A Bundle without
any Appointment is refused (``no_appointment``), e.g. a billing (DFT/BAR) conversion.
Whether one bad entry fails the whole Bundle (transaction) or only itself (batch) is the
caller's decision; this module only says which entries are bad and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.fhir.appointment import (
    BundleContext,
    FhirSource,
    appointment_to_event,
)
from carebus_scheduling_adapter.adapters.fhir.problems import (
    NOT_SUPPORTED,
    REQUIRED,
    VALUE,
    FhirProblem,
)
from carebus_scheduling_adapter.adapters.fhir.resources import (
    Appointment,
    Bundle,
    BundleEntry,
    ContextResource,
    ResourceHead,
    decode,
)

BUNDLE_TYPES: Final = ("transaction", "batch")
_METHODS: Final = ("POST", "PUT")


@dataclass(frozen=True)
class EntryResult:
    index: int
    resource_type: str | None
    event: Event | None = None
    problem: FhirProblem | None = None


@dataclass(frozen=True)
class BundleResult:
    type: str
    entries: tuple[EntryResult, ...]

    @property
    def problems(self) -> list[FhirProblem]:
        return [e.problem for e in self.entries if e.problem is not None]

    @property
    def events(self) -> list[Event]:
        return [e.event for e in self.entries if e.event is not None]


def read_bundle(raw: bytes, source: FhirSource) -> BundleResult:
    """Raises :class:`FhirProblem` when the Bundle as a whole is unacceptable."""
    bundle = decode(raw, Bundle, "Bundle")
    if bundle.resource_type != "Bundle":
        raise FhirProblem(
            "wrong_resource_type", f"expected a Bundle, got {bundle.resource_type}",
            code=VALUE, expression="resourceType", value=bundle.resource_type, status=400,
        )  # fmt: skip
    if bundle.type not in BUNDLE_TYPES:
        raise FhirProblem(
            "unsupported_bundle_type",
            f"Bundle.type must be transaction or batch, not {bundle.type!r}",
            code=NOT_SUPPORTED, expression="Bundle.type", value=bundle.type,
        )  # fmt: skip
    kinds, context = _context(bundle)
    if "Appointment" not in kinds.values():
        raise FhirProblem(
            "no_appointment", "the Bundle carries no Appointment: nothing for scheduling",
            code=NOT_SUPPORTED, expression="Bundle.entry",
        )  # fmt: skip
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
            results.append(EntryResult(index, kind, event=event))
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
    if entry.request is None:
        raise FhirProblem(
            "missing_request", "a transaction or batch entry needs a request",
            code=REQUIRED, expression=f"{where}.request",
        )  # fmt: skip
    method = entry.request.method.upper()
    if method not in _METHODS:
        raise FhirProblem(
            "unsupported_method", f"{method} of an Appointment is not supported (POST or PUT)",
            code=NOT_SUPPORTED, expression=f"{where}.request.method", value=method,
        )  # fmt: skip
    raw = bytes(entry.resource)
    appt = decode(raw, Appointment, f"{where}.resource")
    fhir_id = None
    if method == "PUT" and entry.request.url:
        fhir_id = entry.request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
    try:
        return appointment_to_event(
            appt, raw=raw, method=method, fhir_id=fhir_id, source=source, context=context
        )
    except FhirProblem as problem:
        raise problem.at(f"{where}.resource") from None
