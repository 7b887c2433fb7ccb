"""RFC 9457 problem bodies, and the app-wide handlers that make every error one.

Routes answer known failures with :func:`problem`; the handlers turn Litestar's own errors
(404, 405, validation, body too large) into problem bodies, a dependency's failure (NATS,
JetStream, PostgreSQL) into a 503 with ``Retry-After``, and an unexpected error into a 500.
Every 5xx names a request id and is logged with its traceback under the same id.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from carebus_shared.dependencies import DEPENDENCY_ERRORS

log = logging.getLogger("carebus.http")

PROBLEM_JSON: Final = "application/problem+json"
REQUEST_ID_HEADER: Final = "X-Request-Id"
# Seconds a client waits before retrying after a 503.
RETRY_AFTER_S: Final = 5
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """A problem+json response; ``extra`` members sit beside the standard ones."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def unavailable(detail: str, retry_after_s: int = 5) -> Response[dict[str, Any]]:
    """503: a dependency (JetStream, PostgreSQL) failed, not the input; retrying is safe."""
    return problem(503, "Service Unavailable", detail, headers={"Retry-After": str(retry_after_s)})


def request_id(request: Request[Any, Any, Any]) -> str:
    """The caller's request id when it is a plain token, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    # Litestar's validation errors name the field and the rule ("key", "message"), no value.
    extra = exc.extra if isinstance(exc.extra, Mapping) else {"errors": exc.extra or []}
    title = _TITLES.get(exc.status_code, "Error")
    # Litestar names the URL in a validation failure: its query string may hold patient data.
    query = request.url.query
    detail = exc.detail.replace(f"?{query}", "") if query else exc.detail
    if exc.status_code >= 500:
        rid = request_id(request)
        log.error("%s answered %d", request.url.path, exc.status_code, extra={"request_id": rid})
        extra = {**extra, "request_id": rid}
    return problem(exc.status_code, title, detail, headers=exc.headers, **extra)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    rid = request_id(request)
    log.exception(
        "unhandled error on %s %s", request.method, request.url.path, extra={"request_id": rid}
    )
    return problem(
        500,
        "Internal Server Error",
        "an unexpected error; it is logged under this request id",
        headers={REQUEST_ID_HEADER: rid},
        request_id=rid,
    )


def _dependency_down(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    rid = request_id(request)
    log.warning(
        "%s %s answered 503: a dependency failed (%s)",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
        extra={"request_id": rid},
    )
    return problem(
        503,
        "Service Unavailable",
        "JetStream or PostgreSQL is unavailable; nothing was accepted or changed, retry",
        headers={"Retry-After": str(RETRY_AFTER_S), REQUEST_ID_HEADER: rid},
        request_id=rid,
    )


_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    HTTPException: _http_error,
    **{error: _dependency_down for error in DEPENDENCY_ERRORS},
    Exception: _unexpected,
}
