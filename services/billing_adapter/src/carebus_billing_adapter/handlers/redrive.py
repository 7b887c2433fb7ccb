"""The paths a kept billing input is re-driven down, one per source it was kept under.

The shared use case (``carebus_shared.exceptions.redrive``) finds the record and resolves
it; each path here runs the use case the input first failed in (DFT, 835 or FHIR) and says
what came of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from carebus_billing_adapter.adapters.fhir.decode import RESOURCE_TYPES
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected, operation_outcome
from carebus_billing_adapter.handlers import dft, fhir, remittance
from carebus_shared.exceptions.redrive import Reprocess, Reprocessed


class _BodyId(msgspec.Struct):
    id: str | None = None


def _fhir_id(body: bytes) -> str | None:
    try:
        return msgspec.json.decode(body, type=_BodyId).id
    except msgspec.DecodeError:
        return None  # the FHIR use case reports the bad body


def redrive_paths(
    dfts: dft.DftHandler, remittances: remittance.RemittanceHandler, fhirs: fhir.FhirHandler
) -> dict[str, Reprocess]:
    async def dft_path(raw: bytes, _: Mapping[str, str]) -> Reprocessed:
        outcome = await dfts.handle(raw)
        if isinstance(outcome, dft.DftAccepted):
            return Reprocessed(True, f"{outcome.events} event(s) published", outcome.event_ids)
        error = outcome.error
        return Reprocessed(False, str(error), reason=error.reason)

    async def remittance_path(raw: bytes, _: Mapping[str, str]) -> Reprocessed:
        outcome = await remittances.handle(raw, origin="redrive")
        if isinstance(outcome, remittance.RemittancePosted):
            file = outcome.file
            done = "posted before" if outcome.duplicate else f"{file.events} event(s) published"
            return Reprocessed(True, f"835 {file.digest[:12]}: {done}", outcome.event_ids)
        rejection = outcome.rejection
        return Reprocessed(
            False,
            f"{len(rejection.issues)} issue(s); nothing from this file was posted",
            reason=sorted(rejection.reasons)[0],
            report=rejection.report(),
        )

    def fhir_path(resource_type: str) -> Reprocess:
        async def path(raw: bytes, _: Mapping[str, str]) -> Reprocessed:
            try:
                accepted = await fhirs.handle(resource_type, raw, _fhir_id(raw))
            except FhirRejected as rejected:
                return Reprocessed(
                    False,
                    str(rejected),
                    reason=rejected.issues[0].reason if rejected.issues else None,
                    report=operation_outcome(rejected.issues),
                )
            return Reprocessed(
                True,
                f"{resource_type}/{accepted.resource_id}: {accepted.events} event(s) published",
                accepted.event_ids,
            )

        return path

    async def bundle_path(raw: bytes, _: Mapping[str, str]) -> Reprocessed:
        answer = await fhirs.bundle(raw)
        if answer.problems:
            first = answer.problems[0]
            return Reprocessed(
                False,
                "; ".join(str(p) for p in answer.problems),
                answer.event_ids,
                first.reason,
                report=operation_outcome(list(answer.problems)),
            )
        return Reprocessed(
            True, f"Bundle: {len(answer.event_ids)} event(s) published", answer.event_ids
        )

    return {
        dft.SOURCE: dft_path,
        remittance.SOURCE: remittance_path,
        **{fhir.source_for(kind): fhir_path(kind) for kind in RESOURCE_TYPES},
        fhir.source_for(fhir.BUNDLE): bundle_path,
    }
