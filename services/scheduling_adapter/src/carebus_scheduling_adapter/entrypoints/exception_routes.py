"""HTTP re-drive of rejected inputs kept by this adapter.

``POST /v1/exceptions/{id}/redrive`` re-processes the kept raw input; a request body, when
given, is the corrected input to process instead (the HL7 message, FHIR JSON or CSV header
line + row, as kept).  ``X-Carebus-Operator`` names who did it (kept on the record).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_scheduling_adapter.handlers.redrive import (
    NOT_FOUND,
    NOT_OPEN,
    NOT_OURS,
    REDRIVEN,
    REJECTED,
    Redrive,
)
from carebus_scheduling_adapter.handlers.sink import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
_STATUS: Final = {REDRIVEN: 200, REJECTED: 422, NOT_FOUND: 404, NOT_OPEN: 409, NOT_OURS: 409}


def exception_routes(redrive: Redrive) -> list[HTTPRouteHandler]:
    @post("/v1/exceptions/{record_id:int}/redrive", tags=["exceptions"])
    async def redrive_record(
        request: Request[Any, Any, Any], record_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        """Re-process a kept input (or the corrected one in the body); 200 once published."""
        corrected = await request.body()
        operator = request.headers.get("x-carebus-operator") or "http"
        try:
            result = await redrive.redrive(record_id, corrected or None, operator)
        except TRANSIENT_ERRORS as exc:
            log.warning("re-drive of %d failed: %s", record_id, type(exc).__name__)
            body = _problem(503, "unavailable", "JetStream or PostgreSQL is unavailable; retry")
            return Response(body, status_code=503, media_type=PROBLEM_JSON)
        status = _STATUS[result.outcome]
        body = {
            "outcome": result.outcome,
            "record_id": result.record_id,
            "message": result.message,
            "event_ids": list(result.event_ids),
            "reason": result.reason,
        }
        if status >= 400:
            body = {**_problem(status, result.outcome, result.message), **body}
            return Response(body, status_code=status, media_type=PROBLEM_JSON)
        return Response(body, status_code=status)

    return [redrive_record]


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
