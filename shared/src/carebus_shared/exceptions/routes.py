"""The one HTTP contract for re-driving a kept input, whichever adapter kept it.

``POST /v1/exceptions/{id}/redrive``: an empty body re-processes the kept input; a body is
the corrected input to process instead. The authenticated client (or the person the ops
console names for it) is who did it, kept in the record's history. 200 re-driven; 422
rejected again (the record stays open); 404 no such record; 409 not open, or not an input
this service kept; 503 a dependency failed (retry).
The exceptions API (``carebus_shared.exceptions.api``) answers with the same bodies.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_shared.auth import principal
from carebus_shared.auth.scopes import EXCEPTIONS_WRITE, requires
from carebus_shared.exceptions.redrive import (
    ACTION_HEADER,
    RedriveInputs,
    RedriveOutcome,
    RedriveResult,
    result_body,
)
from carebus_shared.http.problems import RETRY_AFTER_S, problem

_STATUS: Final = {
    RedriveOutcome.REDRIVEN: 200,
    RedriveOutcome.DISCARDED: 200,
    RedriveOutcome.REJECTED: 422,
    RedriveOutcome.NOT_FOUND: 404,
    RedriveOutcome.NOT_OPEN: 409,
    RedriveOutcome.NOT_REDRIVABLE_HERE: 409,
    RedriveOutcome.UNAVAILABLE: 503,
}
_TITLE: Final = {
    RedriveOutcome.REJECTED: "re-driven input rejected again",
    RedriveOutcome.NOT_FOUND: "no such exception record",
    RedriveOutcome.NOT_OPEN: "exception record not open",
    RedriveOutcome.NOT_REDRIVABLE_HERE: "not an input kept here",
    RedriveOutcome.UNAVAILABLE: "a dependency is unavailable, retry",
}


def result_response(result: RedriveResult) -> Response[dict[str, Any]]:
    """200 with the result body, or a problem body carrying the same members."""
    status = _STATUS[result.outcome]
    if status < 400:
        return Response(result_body(result), status_code=status)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return problem(
        status, _TITLE[result.outcome], result.message, headers=headers, **result_body(result)
    )


def actor_of(request: Request[Any, Any, Any]) -> str:
    """Who acts: the authenticated client, never a header it sets about itself."""
    return principal.actor_of(request)


def redrive_routes(redrive: RedriveInputs, max_body_bytes: int) -> list[HTTPRouteHandler]:
    @post(
        "/v1/exceptions/{record_id:int}/redrive",
        tags=["exceptions"],
        request_max_body_size=max_body_bytes,
        summary="Re-drive a kept input, as stored or corrected (the request body)",
        **requires(EXCEPTIONS_WRITE),
    )
    async def redrive_record(
        request: Request[Any, Any, Any], record_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        corrected = await request.body()
        bulk = request.headers.get(ACTION_HEADER) == "bulk_redrive"
        # A dependency's failure propagates: the app answers 503 and logs it.
        result = await redrive.redrive(
            record_id, corrected or None, actor_of(request), "bulk_redrive" if bulk else "redrive"
        )
        return result_response(result)

    return [redrive_record]
