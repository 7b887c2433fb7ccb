"""HTTP entry points: 835 upload, FHIR R4 billing resources, re-drive of rejected inputs.

Success is answered only after JetStream confirmed every event. Bad input gets 4xx with a
body that says precisely what is wrong (problem+json for 835 and re-drive, OperationOutcome
for FHIR); a publish failure gets 503 so the client retries, harmlessly (deterministic ids).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from litestar import Request, Response, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected, operation_outcome
from carebus_billing_adapter.handlers.fhir import FhirAccepted, FhirHandler
from carebus_billing_adapter.handlers.remittance import (
    RemittanceHandler,
    RemittanceOutcome,
    RemittancePosted,
)
from carebus_shared.auth.scopes import CHARGES_WRITE, REMITTANCES_WRITE, requires
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.exceptions.redrive import RedriveInputs
from carebus_shared.exceptions.routes import redrive_routes
from carebus_shared.http.guards import location
from carebus_shared.http.problems import problem

log = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"


def remittance_response(outcome: RemittanceOutcome) -> Response[dict[str, Any]]:
    if isinstance(outcome, RemittancePosted):
        file = outcome.file
        body = {
            "digest": file.digest,
            "duplicate": outcome.duplicate,
            "transactions": file.transactions,
            "claims": file.claims,
            "payment_total_minor": file.payment_total_minor,
            "events": 0 if outcome.duplicate else file.events,
        }
        return Response(body, status_code=200 if outcome.duplicate else 201)
    rejection = outcome.rejection
    claims = rejection.claims
    return problem(
        422,
        "835 rejected",
        f"{len(rejection.issues)} issue(s); nothing from this file was posted"
        + (f"; {len(claims)} failing claim(s)" if claims else ""),
        **rejection.report(),
    )


def fhir_error(rejected: FhirRejected) -> Response[dict[str, Any]]:
    return Response(
        operation_outcome(rejected.issues), status_code=rejected.status, media_type=FHIR_JSON
    )


def fhir_success(accepted: FhirAccepted) -> Response[dict[str, Any]]:
    here = location("fhir", accepted.resource_type, accepted.resource_id)
    return Response(
        accepted.resource,
        status_code=201 if accepted.created else 200,
        media_type=FHIR_JSON,
        headers={"Location": here},
    )


def routes(
    remittances: RemittanceHandler,
    fhir: FhirHandler,
    redrive: RedriveInputs,
    max_upload_bytes: int,
) -> list[HTTPRouteHandler]:
    return [
        *remittance_routes(remittances, max_upload_bytes),
        *fhir_routes(fhir, max_upload_bytes),
        *redrive_routes(redrive, max_upload_bytes),
    ]


def remittance_routes(
    remittances: RemittanceHandler, max_upload_bytes: int
) -> list[HTTPRouteHandler]:
    @post(
        "/v1/remittances",
        tags=["billing"],
        request_max_body_size=max_upload_bytes,
        summary="Upload one X12 835 file (raw body)",
        **requires(REMITTANCES_WRITE),
    )
    async def upload_remittance(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """201 posted, 200 posted before (nothing published), 422 rejected as a whole with
        every issue naming its segment, element and claim."""
        raw = await request.body()
        if not raw:
            return problem(400, "Bad Request", "the request body must be an X12 835 file")
        # JetStream or PostgreSQL down: the app answers 503, nothing was acknowledged.
        return remittance_response(await remittances.handle(raw, origin="http"))

    return [upload_remittance]


def fhir_unavailable(exc: Exception) -> Response[dict[str, Any]]:
    log.error("FHIR request failed: %s", type(exc).__name__)
    response = fhir_error(
        FhirRejected.one("transient", "could not publish; retry", reason="unavailable", status=503)
    )
    response.headers["Retry-After"] = "5"
    return response


def fhir_routes(fhir: FhirHandler, max_body_bytes: int) -> list[HTTPRouteHandler]:
    common: dict[str, Any] = {
        "tags": ["fhir"],
        "request_max_body_size": max_body_bytes,
        **requires(CHARGES_WRITE),
    }

    async def _fhir(resource_type: str, body: bytes, url_id: str | None) -> Response[Any]:
        try:
            return fhir_success(await fhir.handle(resource_type, body, url_id))
        except FhirRejected as rejected:
            return fhir_error(rejected)
        except DEPENDENCY_ERRORS as exc:
            return fhir_unavailable(exc)

    @post("/fhir", summary="Process a transaction or batch Bundle", **common)
    async def fhir_bundle(request: Request[Any, Any, Any]) -> Response[Any]:
        """ChargeItem, ClaimResponse and PaymentReconciliation entries become events; a
        transaction is all or nothing, a batch answers per entry."""
        try:
            answer = await fhir.bundle(await request.body())
        except DEPENDENCY_ERRORS as exc:
            return fhir_unavailable(exc)
        return Response(answer.body, status_code=answer.status, media_type=FHIR_JSON)

    @post("/fhir/{resource_type:str}", summary="Create a FHIR R4 billing resource", **common)
    async def fhir_create(
        resource_type: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """ChargeItem, ClaimResponse or PaymentReconciliation; errors are OperationOutcome."""
        return await _fhir(resource_type, await request.body(), None)

    @put(
        "/fhir/{resource_type:str}/{resource_id:str}",
        summary="Update a FHIR R4 billing resource",
        **common,
    )
    async def fhir_update(
        resource_type: FromPath[str], resource_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        return await _fhir(resource_type, await request.body(), resource_id)

    return [fhir_bundle, fhir_create, fhir_update]
