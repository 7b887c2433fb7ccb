"""The exceptions API: one contract for every stage's exception records.

- ``GET /v1/exceptions?site=&stage=&reason=&status=&since=&until=&cursor=&limit=``: newest
  first, ``total`` matching the filter, ``next_cursor`` (opaque) while more remain;
- ``GET /v1/exceptions/{id}``: the record and its history; the kept input and the values
  that describe it are patient data, shown (base64) only with ``?include=payload`` to a
  client holding ``phi:read`` (a view the audit log records, with the actor);
- ``POST /v1/exceptions/{id}/redrive``: the body, if any, is the corrected input;
- ``POST /v1/exceptions/{id}/discard``: ``{"reason": "..."}``, required;
- ``POST /v1/exceptions/redrive``: ``{filter fields, "dry_run": true, "limit": N}``.
Re-drive and discard answer like the adapters' re-drive route (``routes.py``); the actor is
the authenticated client. Bad input is a 400 problem naming the field and rule, never its value.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery

from carebus_shared.auth.principal import principal_of
from carebus_shared.auth.scopes import EXCEPTIONS_READ, EXCEPTIONS_WRITE, PHI_READ, requires
from carebus_shared.exceptions import query, store
from carebus_shared.exceptions.actions import BulkResult, ExceptionActions
from carebus_shared.exceptions.correction import rule_of
from carebus_shared.exceptions.redrive import result_body
from carebus_shared.exceptions.routes import actor_of, result_response
from carebus_shared.http.problems import problem

_PAYLOAD: Final = "payload"
# What is patient data in a record: shown only when asked for with ?include=payload.
_PHI_COLUMNS: Final = ("raw", "headers", "offending_value")
_MAX_JSON_BODY: Final = 64 * 1024


class DiscardRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class BulkRedriveRequest(msgspec.Struct, forbid_unknown_fields=True):
    limit: int
    dry_run: bool = True
    site: str | None = None
    stage: str | None = None
    reason: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _bad_request(field_name: str, rule: str) -> Response[dict[str, Any]]:
    return problem(400, "invalid request", f"{field_name}: {rule}", field=field_name, rule=rule)


def _decode(cls: type[Any], body: bytes) -> Any:
    """``body`` as ``cls``, or a 400 naming the field and rule (msgspec's, values removed)."""
    try:
        return msgspec.json.decode(body or b"{}", type=cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else "$"
        return _bad_request(path, rule_of(text.split(" - at `")[0]))
    except msgspec.DecodeError:
        return _bad_request("$", "the body must be a JSON object")


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(bytes(value)).decode()


def _record_view(row: dict[str, Any], include_payload: bool) -> dict[str, Any]:
    view = {key: value for key, value in row.items() if key not in _PHI_COLUMNS}
    view["raw_bytes"] = None if row["raw"] is None else len(row["raw"])
    if include_payload:
        view["raw_base64"] = _b64(row["raw"])
        view["headers"] = store.decode_headers(row["headers"])
        view["offending_value"] = row["offending_value"]
    return view


def _action_view(row: dict[str, Any], include_payload: bool) -> dict[str, Any]:
    view = {key: value for key, value in row.items() if key != "sent_body"}
    if include_payload:
        view["sent_body_base64"] = _b64(row["sent_body"])
    return view


def _bulk_body(result: BulkResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "matched": result.matched,
        "selected": len(result.ids),
        "ids": list(result.ids),
        "outcomes": dict(result.outcomes),
        "results": [result_body(one) for one in result.results],
    }


def exceptions_api_routes(
    actions: ExceptionActions, max_body_bytes: int = 50 * 1024 * 1024
) -> list[HTTPRouteHandler]:
    """The API's handlers, to mount in any Litestar app (with the shared problem handlers)."""

    read = requires(EXCEPTIONS_READ)
    write = requires(EXCEPTIONS_WRITE)

    @get(
        "/v1/exceptions",
        tags=["exceptions"],
        summary="Exception records, filtered and paged",
        **read,
    )
    async def list_exceptions(
        site: FromQuery[str | None] = None,
        stage: FromQuery[str | None] = None,
        reason: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Response[dict[str, Any]]:
        try:
            flt = query.ExceptionFilter(site, stage, reason, status, since, until)
            async with actions.pool().acquire() as conn:
                page = await query.search(conn, flt, cursor, limit)
        except query.InvalidQuery as exc:
            return _bad_request(exc.field, exc.rule)
        return Response({"items": page.items, "total": page.total, "next_cursor": page.next_cursor})

    @get(
        "/v1/exceptions/{record_id:int}",
        tags=["exceptions"],
        summary="One exception record and its history (the payload needs phi:read)",
        **read,
    )
    async def get_exception(
        request: Request[Any, Any, Any],
        record_id: FromPath[int],
        include: FromQuery[str | None] = None,
    ) -> Response[dict[str, Any]]:
        if include not in (None, _PAYLOAD):
            return _bad_request("include", f"the only value is {_PAYLOAD}")
        if include == _PAYLOAD and PHI_READ not in principal_of(request).scopes:
            detail = f"include={_PAYLOAD} shows patient data: it needs scope {PHI_READ}"
            return problem(403, "Forbidden", detail, required_scopes=[PHI_READ])
        shown = include == _PAYLOAD
        found = await actions.view(record_id, shown, actor_of(request))
        if found is None:
            return problem(404, "no such exception record", f"no exception record {record_id}")
        row, actions_done = found
        return Response(
            {
                "record": _record_view(row, shown),
                "history": [_action_view(action, shown) for action in actions_done],
            }
        )

    @post(
        "/v1/exceptions/{record_id:int}/redrive",
        tags=["exceptions"],
        request_max_body_size=max_body_bytes,
        summary="Re-drive a record of any stage, as stored or corrected (the request body)",
        **write,
    )
    async def redrive_exception(
        request: Request[Any, Any, Any], record_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        corrected = await request.body()
        result = await actions.redrive(record_id, corrected or None, actor_of(request))
        return result_response(result)

    @post(
        "/v1/exceptions/{record_id:int}/discard",
        tags=["exceptions"],
        request_max_body_size=_MAX_JSON_BODY,
        summary="Close a record without re-driving it; a reason is required",
        **write,
    )
    async def discard_exception(
        request: Request[Any, Any, Any], record_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        decoded = _decode(DiscardRequest, await request.body())
        if isinstance(decoded, Response):
            return decoded
        if not decoded.reason.strip():
            return _bad_request("reason", "a discard needs a reason")
        result = await actions.discard(record_id, decoded.reason, actor_of(request))
        return result_response(result)

    @post(
        "/v1/exceptions/redrive",
        tags=["exceptions"],
        request_max_body_size=_MAX_JSON_BODY,
        summary="Re-drive the open records a filter matches (dry_run says which, first)",
        **write,
    )
    async def bulk_redrive(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        decoded = _decode(BulkRedriveRequest, await request.body())
        if isinstance(decoded, Response):
            return decoded
        try:
            flt = query.ExceptionFilter(
                decoded.site, decoded.stage, decoded.reason, decoded.status,
                decoded.since, decoded.until,
            )  # fmt: skip
            result = await actions.bulk_redrive(
                flt, decoded.dry_run, decoded.limit, actor_of(request)
            )
        except query.InvalidQuery as exc:
            return _bad_request(exc.field, exc.rule)
        return Response(_bulk_body(result), status_code=200)

    return [list_exceptions, get_exception, redrive_exception, discard_exception, bulk_redrive]
