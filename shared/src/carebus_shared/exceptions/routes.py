"""The one HTTP contract for re-driving a kept input, whichever adapter kept it.

``POST /v1/exceptions/{id}/redrive``: an empty body re-processes the kept input; a body is
the corrected input to process instead. ``X-Carebus-Actor`` names who did it (kept on the
record). 200 re-driven; 422 rejected again (the record stays open); 404 no such record;
409 not open, or not an input this service kept; 503 a dependency failed (retry).
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_shared.exceptions.redrive import RedriveInputs, RedriveOutcome, RedriveResult
from carebus_shared.http.problems import problem

ACTOR_HEADER: Final = "X-Carebus-Actor"
_STATUS: Final = {
    RedriveOutcome.REDRIVEN: 200,
    RedriveOutcome.REJECTED: 422,
    RedriveOutcome.NOT_FOUND: 404,
    RedriveOutcome.NOT_OPEN: 409,
    RedriveOutcome.NOT_REDRIVABLE_HERE: 409,
}
_TITLE: Final = {
    RedriveOutcome.REJECTED: "re-driven input rejected again",
    RedriveOutcome.NOT_FOUND: "no such exception record",
    RedriveOutcome.NOT_OPEN: "exception record not open",
    RedriveOutcome.NOT_REDRIVABLE_HERE: "not an input kept here",
}


def result_body(result: RedriveResult) -> dict[str, Any]:
    return {
        "record_id": result.record_id,
        "outcome": str(result.outcome),
        "message": result.message,
        "source": result.source,
        "event_ids": list(result.event_ids),
        "reason": result.reason,
        "report": dict(result.report),
    }


def redrive_routes(redrive: RedriveInputs, max_body_bytes: int) -> list[HTTPRouteHandler]:
    @post(
        "/v1/exceptions/{record_id:int}/redrive",
        tags=["exceptions"],
        request_max_body_size=max_body_bytes,
        summary="Re-drive a kept input, as stored or corrected (the request body)",
    )
    async def redrive_record(
        request: Request[Any, Any, Any], record_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        corrected = await request.body()
        actor = request.headers.get(ACTOR_HEADER) or "http"
        # A dependency's failure propagates: the app answers 503 and logs it.
        result = await redrive.redrive(record_id, corrected or None, actor)
        status = _STATUS[result.outcome]
        if status >= 400:
            return problem(status, _TITLE[result.outcome], result.message, **result_body(result))
        return Response(result_body(result), status_code=status)

    return [redrive_record]
