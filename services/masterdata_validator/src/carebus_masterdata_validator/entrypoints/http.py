"""The governed master-data API (Litestar, /v1) and the quarantine API.

Routes are generated per kind from its :class:`KindSpec`; the record type of each is set on
the handler's annotations before Litestar reads them, so bodies are decoded (and documented
in the OpenAPI at /schema) as that kind's contract struct.
Errors are RFC 9457 problem bodies (application/problem+json) that name the field.
"""

# No `from __future__ import annotations` here: Litestar resolves these handlers' annotations
# at run time, and the per-kind ones are set on them as real types.

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, get, post, put
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.types import ExceptionHandlersMap

from carebus_contracts.envelope import Contract
from carebus_masterdata_validator.adapters import import_formats, quarantine_repo
from carebus_masterdata_validator.adapters.quarantine_repo import Parked
from carebus_masterdata_validator.adapters.records_repo import Stored
from carebus_masterdata_validator.domain.kinds import SPECS, KindSpec
from carebus_masterdata_validator.domain.problems import FieldError, Problem
from carebus_masterdata_validator.handlers.masterdata import Caller, MasterData, as_dict
from carebus_masterdata_validator.handlers.quarantine import Quarantine

PROBLEM_JSON = "application/problem+json"
ACTOR_HEADER = "X-Carebus-Actor"
_RESERVED_QUERY = {"limit", "cursor", "active", "valid_on", "q"}

F = TypeVar("F", bound=Callable[..., Any])


# -- problems ----------------------------------------------------------------------------------
def problem_response(problem: Problem) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["field"] = problem.errors[0].field
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    body.update(problem.extra)
    return Response(body, status_code=problem.status, media_type=PROBLEM_JSON)


def _on_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(exc)


def _on_invalid(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "$")
            errors.append(FieldError(key, str(item.get("message", ""))))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or str(exc.detail)
    return problem_response(Problem(400, "Invalid request", detail, errors))


def _on_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # Not connected yet / reconnecting / a publish not confirmed: worth retrying shortly.
    return problem_response(Problem(503, "Unavailable", f"{exc}; retry shortly"))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Problem: _on_problem,
    ValidationException: _on_invalid,
    RuntimeError: _on_unavailable,
    OSError: _on_unavailable,
}


# -- request context ---------------------------------------------------------------------------
def caller_of(request: Request[Any, Any, Any]) -> Caller:
    actor = request.headers.get(ACTOR_HEADER, "").strip() or "anonymous"
    request_id = request.headers.get("X-Request-Id", "").strip() or uuid.uuid4().hex
    return Caller(actor[:200], request_id[:200])


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int:
    if value is None:
        raise Problem(
            428,
            "Precondition required",
            "send If-Match with the ETag you read, so a change made since is not overwritten",
            [FieldError("If-Match", "required")],
        )
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Problem(
            400,
            "Bad If-Match",
            f"{value!r} is not an ETag of this API",
            [FieldError("If-Match", "not an ETag")],
        )
    return int(text)


def _record_response(spec: KindSpec, stored: Stored, status: int = 200) -> Response[Any]:
    record_id = spec.record_id(stored.record)
    return Response(
        stored.record,
        status_code=status,
        headers={
            "ETag": etag(stored.version),
            "Location": f"/v1/{spec.collection}/{record_id}",
            "Last-Modified": stored.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
    )


def _typed(handler: F, **annotations: Any) -> F:
    handler.__annotations__.update(annotations)
    return handler


# -- master data -------------------------------------------------------------------------------
def kind_routes(spec: KindSpec, service: MasterData) -> list[HTTPRouteHandler]:
    base = f"/v1/{spec.collection}"
    tags = [spec.collection]
    common: dict[str, Any] = {"tags": tags, "exception_handlers": EXCEPTION_HANDLERS}
    item = f"{base}/{{record_id:str}}"
    model = spec.model

    async def create(data: Contract, request: Request[Any, Any, Any]) -> Response[Any]:
        stored = await service.create(spec, data, caller_of(request))
        return _record_response(spec, stored, 201)

    async def read(record_id: str) -> Response[Any]:
        return _record_response(spec, await service.get(spec, record_id))

    async def replace(
        record_id: str,
        data: Contract,
        request: Request[Any, Any, Any],
        if_match: Annotated[str | None, Parameter(header="If-Match")] = None,
    ) -> Response[Any]:
        version = parse_if_match(if_match)
        stored = await service.update(spec, record_id, data, version, caller_of(request))
        return _record_response(spec, stored)

    async def deactivate(
        record_id: str,
        request: Request[Any, Any, Any],
        if_match: Annotated[str | None, Parameter(header="If-Match")] = None,
    ) -> Response[Any]:
        version = parse_if_match(if_match)
        stored = await service.deactivate(spec, record_id, version, caller_of(request))
        return _record_response(spec, stored)

    async def listing(
        request: Request[Any, Any, Any],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        active: bool | None = None,
        valid_on: date | None = None,
        q: str | None = None,
    ) -> dict[str, Any]:
        filters = {k: v for k, v in request.query_params.items() if k not in _RESERVED_QUERY}
        page, next_cursor = await service.list_page(
            spec,
            filters=filters,
            active=active,
            valid_on=valid_on,
            name_contains=q,
            cursor=cursor,
            limit=limit,
        )
        return {"items": [as_dict(s) for s in page], "next_cursor": next_cursor}

    async def history(record_id: str) -> dict[str, Any]:
        entries = await service.history(spec, record_id)
        return {"items": [msgspec.to_builtins(e) for e in entries]}

    async def bulk_import(
        request: Request[Any, Any, Any], dry_run: bool = False
    ) -> Response[dict[str, Any]]:
        body = await request.body()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in ("text/csv", "application/csv"):
            parsed = import_formats.parse_csv(spec, body)
        elif content_type in ("application/json", ""):
            parsed = import_formats.parse_json(spec, body)
        else:
            raise Problem(
                415,
                "Unsupported import format",
                "send text/csv or application/json",
                [FieldError("Content-Type", content_type)],
            )
        report = await service.import_rows(spec, parsed, caller_of(request), dry_run=dry_run)
        body_out: dict[str, Any] = msgspec.to_builtins(report)
        if report.counts["error"]:
            first = next(r for r in report.rows if r.status == "error")
            field = first.errors[0].field if first.errors else "$"
            body_out.update(
                type="about:blank",
                title="Import refused",
                status=422,
                detail=f"{report.counts['error']} row(s) in error; nothing was written "
                f"(first: row {first.row}, field {field})",
                field=field,
            )
            return Response(body_out, status_code=422, media_type=PROBLEM_JSON)
        return Response(body_out)

    summary = spec.name.replace("_", " ")
    filters = ", ".join(spec.filters) or "none"
    return [
        post(base, summary=f"Create a {summary}", **common)(_typed(create, data=model)),
        get(
            base,
            summary=f"List {spec.collection}",
            description=f"Keyset pages (limit, cursor); filters: active, valid_on, q (name), "
            f"and by equality: {filters}.",
            **common,
        )(listing),
        get(item, summary=f"Read a {summary}", **common)(read),
        put(item, summary=f"Replace a {summary} (If-Match required)", **common)(
            _typed(replace, data=model)
        ),
        post(
            f"{item}/deactivate",
            summary=f"Deactivate a {summary} (If-Match required)",
            status_code=200,
            **common,
        )(deactivate),
        get(f"{item}/history", summary=f"Who changed a {summary}, when, from what", **common)(
            history
        ),
        post(
            f"{base}/import",
            summary=f"Bulk import {spec.collection} (CSV or JSON), all rows or none",
            status_code=200,
            **common,
        )(bulk_import),
    ]


# -- quarantine --------------------------------------------------------------------------------
class DiscardRequest(msgspec.Struct, frozen=True, kw_only=True):
    note: str = ""


class ReleaseRequest(msgspec.Struct, frozen=True, kw_only=True):
    entity_key: str | None = None
    """Release only this entity's parked events; all parked entities when absent."""


def _parked_view(row: Parked) -> dict[str, Any]:
    """What a person needs to act: never the payload (it may carry patient data)."""
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "entity_key": row.entity.split(":", 1)[1],
        "stream": row.stream,
        "stream_seq": row.stream_seq,
        "site": row.site,
        "parked_at": row.parked_at.isoformat(),
        "failures": [msgspec.to_builtins(f) for f in row.failures],
        "waiting_for": list(row.missing_keys),
        "queued_behind_earlier_event": not row.failures,
        "attempts": row.attempts,
    }


def quarantine_routes(quarantine: Quarantine, pool: Callable[[], Any]) -> list[HTTPRouteHandler]:
    common: dict[str, Any] = {"tags": ["quarantine"], "exception_handlers": EXCEPTION_HANDLERS}

    async def listing(
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        cursor: int | None = None,
        entity_key: str | None = None,
        reason: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        async with pool().acquire() as conn:
            rows = await quarantine_repo.list_page(
                conn, entity_key=entity_key, reason=reason, site=site, after_id=cursor, limit=limit
            )
        return {
            "items": [_parked_view(r) for r in rows],
            "next_cursor": rows[-1].id if len(rows) == limit else None,
        }

    async def read(parked_id: int) -> dict[str, Any]:
        async with pool().acquire() as conn:
            row = await quarantine_repo.get(conn, parked_id)
        if row is None:
            raise Problem(404, "Not found", f"no parked event {parked_id}")
        return _parked_view(row)

    async def release_one(parked_id: int, request: Request[Any, Any, Any]) -> dict[str, Any]:
        caller = caller_of(request)
        report = await quarantine.release_one(parked_id, caller.actor, caller.request_id)
        return {"released": report.released}

    async def discard(
        parked_id: int, request: Request[Any, Any, Any], data: DiscardRequest | None = None
    ) -> dict[str, Any]:
        caller = caller_of(request)
        note = data.note if data is not None else ""
        row = await quarantine.discard(parked_id, caller.actor, caller.request_id, note)
        return {"discarded": row.id, "event_id": row.event_id}

    async def release(data: ReleaseRequest | None = None) -> dict[str, Any]:
        async with pool().acquire() as conn:
            if data is not None and data.entity_key is not None:
                rows = await quarantine_repo.list_page(
                    conn,
                    entity_key=data.entity_key,
                    reason=None,
                    site=None,
                    after_id=None,
                    limit=1,
                )
                entities = [rows[0].entity] if rows else []
            else:
                entities = await quarantine_repo.all_entities(conn, 1000)
        report = await quarantine.release_entities(entities, "manual")
        return {
            "entities": report.entities,
            "released": report.released,
            "still_parked": sorted(report.still_parked),
        }

    item = "/v1/quarantine/{parked_id:int}"
    return [
        get("/v1/quarantine", summary="List parked events (no payloads)", **common)(listing),
        get(item, summary="Read a parked event", **common)(read),
        post(
            f"{item}/release",
            summary="Re-validate and release a parked event now",
            status_code=200,
            **common,
        )(release_one),
        post(
            f"{item}/discard",
            summary="Discard a parked event (recorded)",
            status_code=200,
            **common,
        )(discard),
        post(
            "/v1/quarantine/release",
            summary="Re-validate every parked entity, or one",
            status_code=200,
            **common,
        )(release),
    ]


def api_routes(
    service: MasterData, quarantine: Quarantine, pool: Callable[[], Any]
) -> list[HTTPRouteHandler]:
    routes: list[HTTPRouteHandler] = []
    for spec in SPECS:
        routes += kind_routes(spec, service)
    return routes + quarantine_routes(quarantine, pool)
