"""What every HTTP app checks before a route runs, and builds for its answers.

Query and path parameters reach SQL as text: PostgreSQL refuses a NUL (and UTF-8 a lone
surrogate), which used to surface as a 500. They are refused here as bad input, naming the
parameter, never quoting it. Headers must be Latin-1: an id taken from the input goes into
``Location`` percent-encoded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response

from carebus_shared.http.problems import problem


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def refuse_unstorable_parameters(
    request: Request[Any, Any, Any],
) -> Response[dict[str, Any]] | None:
    """A ``before_request`` hook: 400 for a NUL or lone surrogate in the path or query."""
    if _unstorable(request.scope["path"]):
        return _refused("the path", "path")
    for name, value in request.query_params.multi_items():
        if _unstorable(name):
            return _refused("a query parameter's name", "query")
        if _unstorable(value):
            return _refused(f"query parameter {name}", name)
    return None


def _refused(what: str, field: str) -> Response[dict[str, Any]]:
    detail = f"{what} must not contain a NUL character or a lone surrogate"
    return problem(400, "Bad Request", detail, field=field)


def location(*segments: str) -> str:
    """``/a/b/c`` from segments, each percent-encoded (ids from the input are not Latin-1)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)
