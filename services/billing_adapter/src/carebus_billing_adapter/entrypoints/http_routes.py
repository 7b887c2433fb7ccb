"""HTTP entry points: 835 upload, FHIR R4 billing resources, re-drive of rejected inputs.

Success is answered only after JetStream confirmed every event. Bad input gets 4xx with a
body that says precisely what is wrong (problem+json for 835 and re-drive, OperationOutcome
for FHIR); a publish failure gets 503 so the client retries, harmlessly (deterministic ids).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import asyncpg
import nats.errors
from litestar import Request, Response, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery

from carebus_billing_adapter.adapters.fhir.outcome import FhirIssue, FhirRejected, operation_outcome
from carebus_billing_adapter.handlers import dft
from carebus_billing_adapter.handlers.fhir import FhirAccepted, FhirHandler
from carebus_billing_adapter.handlers.redrive import RedriveHandler, Redriven, RedriveRefused
from carebus_billing_adapter.handlers.remittance import (
    RemittanceHandler,
    RemittanceOutcome,
    RemittancePosted,
)
from carebus_shared.jetstream.publish import PublishFailed

log = logging.getLogger(__name__)

# Failures of the dependencies, not of the input: the client should retry later.
TRANSIENT: Final = (
    PublishFailed,
    nats.errors.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    RuntimeError,  # the runtime is not connected yet
)

PROBLEM = "application/problem+json"
FHIR_JSON = "application/fhir+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM)


def unavailable(exc: Exception) -> Response[dict[str, Any]]:
    log.error("publishing failed, answering 503: %s", type(exc).__name__)
    response = problem(
        503, "Service Unavailable", "the events could not be published; nothing was posted, retry"
    )
    response.headers["Retry-After"] = "5"
    return response


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
    claims = sorted(
        {i.patient_control_number for i in rejection.issues if i.patient_control_number}
    )
    return problem(
        422,
        "835 rejected",
        f"{len(rejection.issues)} issue(s); nothing from this file was posted"
        + (f"; failing claim(s): {', '.join(claims)}" if claims else ""),
        digest=rejection.file_digest,
        issues=[
            {
                "reason": str(issue.reason),
                "message": issue.message,
                "segment": issue.segment_tag,
                "segment_position": issue.segment_position,
                "element": issue.element,
                "claim": issue.patient_control_number,
                "expected_minor": issue.expected_minor,
                "actual_minor": issue.actual_minor,
            }
            for issue in rejection.issues
        ],
    )


def fhir_error(rejected: FhirRejected) -> Response[dict[str, Any]]:
    return Response(
        operation_outcome(rejected.issues), status_code=rejected.status, media_type=FHIR_JSON
    )


def fhir_success(accepted: FhirAccepted) -> Response[dict[str, Any]]:
    location = f"/fhir/{accepted.resource_type}/{accepted.resource_id}"
    return Response(
        accepted.resource,
        status_code=201 if accepted.created else 200,
        media_type=FHIR_JSON,
        headers={"Location": location},
    )


def redrive_response(redriven: Redriven) -> Response[dict[str, Any]]:
    outcome = redriven.outcome
    if isinstance(outcome, FhirRejected):
        detail: dict[str, Any] = operation_outcome(outcome.issues)
    elif isinstance(outcome, FhirAccepted):
        detail = {"resource_id": outcome.resource_id, "events": outcome.events}
    elif isinstance(outcome, dft.DftAccepted):
        detail = {"events": outcome.events}
    elif isinstance(outcome, dft.DftRejected):
        detail = {"reason": outcome.error.reason, "message": str(outcome.error)}
    else:
        detail = _content(remittance_response(outcome))
    body = {
        "record_id": redriven.record_id,
        "source": redriven.source,
        "accepted": redriven.accepted,
        "outcome": detail,
    }
    if redriven.accepted:
        return Response(body, status_code=200)
    return problem(422, "re-driven input rejected again", "the record stays open", **body)


def _content(response: Response[dict[str, Any]]) -> dict[str, Any]:
    content = response.content
    return content if isinstance(content, dict) else {}


def routes(
    remittances: RemittanceHandler,
    fhir: FhirHandler,
    redrive: RedriveHandler,
    max_upload_bytes: int,
) -> list[HTTPRouteHandler]:
    @post(
        "/v1/remittances",
        tags=["billing"],
        request_max_body_size=max_upload_bytes,
        summary="Upload one X12 835 file (raw body)",
    )
    async def upload_remittance(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """201 posted, 200 posted before (nothing published), 422 rejected as a whole with
        every issue naming its segment, element and claim."""
        raw = await request.body()
        if not raw:
            return problem(400, "Bad Request", "the request body must be an X12 835 file")
        try:
            outcome = await remittances.handle(raw, origin="http")
        except TRANSIENT as exc:  # JetStream or PostgreSQL down: nothing acknowledged
            return unavailable(exc)
        return remittance_response(outcome)

    async def _fhir(resource_type: str, body: bytes, url_id: str | None) -> Response[Any]:
        try:
            return fhir_success(await fhir.handle(resource_type, body, url_id))
        except FhirRejected as rejected:
            return fhir_error(rejected)
        except TRANSIENT as exc:
            log.error("FHIR request failed: %s", type(exc).__name__)
            return fhir_error(
                FhirRejected(
                    [FhirIssue(code="transient", diagnostics="could not publish; retry")], 503
                )
            )

    @post("/fhir/{resource_type:str}", tags=["fhir"], summary="Create a FHIR R4 billing resource")
    async def fhir_create(
        resource_type: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """ChargeItem, ClaimResponse or PaymentReconciliation; errors are OperationOutcome."""
        return await _fhir(resource_type, await request.body(), None)

    @put(
        "/fhir/{resource_type:str}/{resource_id:str}",
        tags=["fhir"],
        summary="Update a FHIR R4 billing resource",
    )
    async def fhir_update(
        resource_type: FromPath[str], resource_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        return await _fhir(resource_type, await request.body(), resource_id)

    @post(
        "/v1/exceptions/{record_id:int}/redrive",
        tags=["exceptions"],
        request_max_body_size=max_upload_bytes,
        summary="Re-drive a rejected billing input, as stored or corrected (request body)",
    )
    async def redrive_record(
        record_id: FromPath[int],
        request: Request[Any, Any, Any],
        by: FromQuery[str] = "http-redrive",
    ) -> Response[dict[str, Any]]:
        corrected = await request.body()
        try:
            redriven = await redrive.redrive(record_id, corrected or None, by)
        except RedriveRefused as refused:
            return problem(refused.status, "cannot re-drive", refused.detail)
        except TRANSIENT as exc:
            return unavailable(exc)
        return redrive_response(redriven)

    return [upload_remittance, fhir_create, fhir_update, redrive_record]
