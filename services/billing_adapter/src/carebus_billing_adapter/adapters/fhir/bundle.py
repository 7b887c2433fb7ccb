"""A FHIR transaction or batch Bundle → one outcome per entry.  Pure.

ChargeItem, ClaimResponse and PaymentReconciliation entries (request POST or PUT) become
events exactly as they would one by one; every other resource is context, not read and not
stored (carebus is not a FHIR server).  A Bundle without any billing resource is refused
(``no_billing_resource``), e.g. a scheduling conversion.  Reading the Bundle, and whether one
bad entry fails the whole Bundle (transaction) or only itself (batch), are the shared
``carebus_shared.fhir.bundle``'s, the same as the scheduling adapter's.
"""

from __future__ import annotations

from carebus_billing_adapter.adapters.fhir.decode import RESOURCE_TYPES
from carebus_billing_adapter.adapters.fhir.mapping import FhirContext, resource_events
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_shared.fhir.bundle import (
    BundleEntry,
    BundleResult,
    EntryResult,
    entry_request,
    read_bundle,
)
from carebus_shared.fhir.decoding import resource_type_of
from carebus_shared.fhir.outcome import NOT_SUPPORTED, FhirProblem


def read_billing_bundle(raw: bytes, ctx: FhirContext) -> BundleResult:
    """Raises :class:`FhirProblem` when the Bundle as a whole is unacceptable."""
    bundle = read_bundle(raw)
    kinds = {
        index: resource_type_of(entry.resource, f"Bundle.entry[{index}].resource")
        for index, entry in enumerate(bundle.entry)
        if entry.resource
    }
    if not any(kind in RESOURCE_TYPES for kind in kinds.values()):
        raise FhirProblem(
            "no_billing_resource",
            "the Bundle carries no ChargeItem, ClaimResponse or PaymentReconciliation: "
            "nothing for billing",
            code=NOT_SUPPORTED, expression="Bundle.entry",
        )  # fmt: skip
    assert bundle.type is not None  # read_bundle checked it
    return BundleResult(
        bundle.type,
        tuple(
            _entry(index, entry, kinds.get(index), ctx) for index, entry in enumerate(bundle.entry)
        ),
    )


def _entry(index: int, entry: BundleEntry, kind: str | None, ctx: FhirContext) -> EntryResult:
    if kind not in RESOURCE_TYPES:
        return EntryResult(index, kind)
    try:
        request = entry_request(index, entry, kind)
        resource_id, events = resource_events(kind, bytes(entry.resource), request.url_id, ctx)
    except FhirProblem as problem:
        return EntryResult(index, kind, problem=problem)
    except FhirRejected as rejected:
        located = rejected.issues[0].at(f"Bundle.entry[{index}].resource")
        return EntryResult(index, kind, problem=located)
    return EntryResult(index, kind, tuple(events), location=f"{kind}/{resource_id}")
