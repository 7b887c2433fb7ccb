"""HTTP routes: FHIR R4 Appointment create and update, transaction / batch Bundles, and the
shared re-drive of kept inputs (``carebus_shared.exceptions.routes``).

JSON only (``application/fhir+json`` or ``application/json``).  The sender can name itself
and its site with ``X-Carebus-Source-System`` / ``X-Carebus-Site`` (defaults from settings).
Errors are OperationOutcomes: 4xx for the input (kept in the exception store), 503 when
JetStream or PostgreSQL is unavailable (nothing kept or published: retry).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_scheduling_adapter.handlers.fhir_requests import (
    BUNDLE,
    CREATE,
    UPDATE,
    FhirReply,
    FhirRequests,
)
from carebus_shared.auth.scopes import APPOINTMENTS_WRITE, requires
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.exceptions.redrive import RedriveInputs
from carebus_shared.exceptions.routes import redrive_routes
from carebus_shared.fhir.outcome import NOT_SUPPORTED, TRANSIENT, FhirProblem, operation_outcome

log = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
_ACCEPTED_MEDIA: Final = ("application/fhir+json", "application/json", "")

AnyRequest = Request[Any, Any, Any]


def routes(
    fhir: FhirRequests, redrive: RedriveInputs, max_body_bytes: int
) -> list[HTTPRouteHandler]:
    return [*fhir_routes(fhir, max_body_bytes), *redrive_routes(redrive, max_body_bytes)]


def fhir_routes(fhir: FhirRequests, max_body_bytes: int) -> list[HTTPRouteHandler]:
    common: dict[str, Any] = {
        "tags": ["fhir"],
        "request_max_body_size": max_body_bytes,
        **requires(APPOINTMENTS_WRITE),
    }

    @post("/fhir/Appointment", summary="Create an Appointment", **common)
    async def create_appointment(request: AnyRequest) -> Response[bytes]:
        """201 with the resource once its event is stored in JetStream; 4xx OperationOutcome."""
        return await _answer(request, fhir, CREATE, None)

    @put("/fhir/Appointment/{appointment_id:str}", summary="Update an Appointment", **common)
    async def update_appointment(
        request: AnyRequest, appointment_id: FromPath[str]
    ) -> Response[bytes]:
        """200 with the resource once its event is stored in JetStream; 4xx OperationOutcome."""
        return await _answer(request, fhir, UPDATE, appointment_id)

    @post("/fhir", summary="Process a transaction or batch Bundle", **common)
    async def process_bundle(request: AnyRequest) -> Response[bytes]:
        """Appointment entries become events; other resources only resolve references."""
        return await _answer(request, fhir, BUNDLE, None)

    return [create_appointment, update_appointment, process_bundle]


async def _answer(
    request: AnyRequest, fhir: FhirRequests, interaction: str, fhir_id: str | None
) -> Response[bytes]:
    raw = await request.body()
    overrides: dict[str, Any] = {
        "source_system": request.headers.get("x-carebus-source-system") or None,
        "site": request.headers.get("x-carebus-site") or None,
    }
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    async def run() -> FhirReply:
        if media not in _ACCEPTED_MEDIA:
            problem = FhirProblem(
                "unsupported_media_type", f"{media} is not supported: send FHIR JSON",
                code=NOT_SUPPORTED, value=media, status=415,
            )  # fmt: skip
            return await fhir.refuse(
                raw, problem, interaction=interaction, fhir_id=fhir_id, **overrides
            )
        if interaction == CREATE:
            return await fhir.create(raw, **overrides)
        if interaction == UPDATE and fhir_id is not None:
            return await fhir.update(fhir_id, raw, **overrides)
        return await fhir.bundle(raw, **overrides)

    try:
        reply = await run()
    except DEPENDENCY_ERRORS as exc:
        log.warning("FHIR %s not processed, answering 503: %s", interaction, type(exc).__name__)
        unavailable = FhirProblem(
            "unavailable", "the event store is unavailable; retry later", code=TRANSIENT,
            status=503,
        )  # fmt: skip
        return _response(503, operation_outcome([unavailable]), {"Retry-After": "5"})
    return _response(reply.status, reply.body, reply.headers)


def _response(status: int, body: dict[str, Any], headers: dict[str, str]) -> Response[bytes]:
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=FHIR_JSON, headers=headers
    )
