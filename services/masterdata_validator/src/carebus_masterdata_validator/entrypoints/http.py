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
from carebus_contracts.rule_text import rule_only
from carebus_masterdata_validator.adapters import import_formats
from carebus_masterdata_validator.adapters.quarantine_repo import Parked
from carebus_masterdata_validator.adapters.records_repo import Stored
from carebus_masterdata_validator.domain.kinds import SPECS, KindSpec
from carebus_masterdata_validator.domain.problems import FieldError, Problem
from carebus_masterdata_validator.handlers.masterdata import Caller, MasterData, as_dict
from carebus_masterdata_validator.handlers.quarantine import Quarantine
from carebus_shared.auth.principal import actor_of
from carebus_shared.auth.scopes import (
    EXCEPTIONS_READ,
    EXCEPTIONS_WRITE,
    MASTERDATA_READ,
    MASTERDATA_WRITE,
    requires,
)
from carebus_shared.http.guards import location
from carebus_shared.http.problems import problem

_RESERVED_QUERY = {"limit", "cursor", "active", "valid_on", "q"}
_MAX_RECORD_BYTES = 1024 * 1024  # one master-data record
_MAX_IMPORT_BYTES = 50 * 1024 * 1024  # a bulk import file
_MAX_ACTION_BYTES = 64 * 1024  # a quarantine action's note

F = TypeVar("F", bound=Callable[..., Any])


# -- problems ----------------------------------------------------------------------------------
def problem_response(refused: Problem) -> Response[dict[str, Any]]:
    fields: dict[str, Any] = {}
    if refused.errors:
        fields["field"] = refused.errors[0].field
        fields["errors"] = [{"field": e.field, "message": e.message} for e in refused.errors]
    fields.update(refused.extra)
    return problem(refused.status, refused.title, refused.detail, **fields)


def _on_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(exc)


def _on_invalid(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "$")
            errors.append(FieldError(key, rule_only(str(item.get("message", "")))))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or str(exc.detail)
    return problem_response(Problem(400, "Invalid request", detail, errors))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Problem: _on_problem,
    ValidationException: _on_invalid,
}


# -- request context ---------------------------------------------------------------------------
def caller_of(request: Request[Any, Any, Any]) -> Caller:
    request_id = request.headers.get("X-Request-Id", "").strip() or uuid.uuid4().hex
    return Caller(actor_of(request), request_id[:200])


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
            "the If-Match value is not an ETag of this API",
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
            "Location": location("v1", spec.collection, record_id),
            "Last-Modified": stored.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
    )


def _typed(handler: F, **annotations: Any) -> F:
    handler.__annotations__.update(annotations)
    return handler


# -- master data -------------------------------------------------------------------------------
IfMatch = Annotated[str | None, Parameter(header="If-Match")]


def kind_routes(spec: KindSpec, service: MasterData) -> list[HTTPRouteHandler]:
    return [
        _create_route(spec, service),
        _list_route(spec, service),
        _read_route(spec, service),
        _replace_route(spec, service),
        _deactivate_route(spec, service),
        _history_route(spec, service),
        _import_route(spec, service),
    ]


def _common(spec: KindSpec, scope: str = MASTERDATA_READ) -> dict[str, Any]:
    return {
        "tags": [spec.collection],
        "exception_handlers": EXCEPTION_HANDLERS,
        **requires(scope),
    }


def _writes(spec: KindSpec, max_body_bytes: int = _MAX_RECORD_BYTES) -> dict[str, Any]:
    return {**_common(spec, MASTERDATA_WRITE), "request_max_body_size": max_body_bytes}


def _item(spec: KindSpec) -> str:
    return f"/v1/{spec.collection}/{{record_id:str}}"


def _label(spec: KindSpec) -> str:
    return spec.name.replace("_", " ")


def _create_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def create(data: Contract, request: Request[Any, Any, Any]) -> Response[Any]:
        stored = await service.create(spec, data, caller_of(request))
        return _record_response(spec, stored, 201)

    return post(f"/v1/{spec.collection}", summary=f"Create a {_label(spec)}", **_writes(spec))(
        _typed(create, data=spec.model)
    )


def _list_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
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
            spec, filters=filters, active=active, valid_on=valid_on, name_contains=q,
            cursor=cursor, limit=limit,
        )  # fmt: skip
        return {"items": [as_dict(s) for s in page], "next_cursor": next_cursor}

    filters = ", ".join(spec.filters) or "none"
    return get(
        f"/v1/{spec.collection}",
        summary=f"List {spec.collection}",
        description=f"Keyset pages (limit, cursor); filters: active, valid_on, q (name), "
        f"and by equality: {filters}.",
        **_common(spec),
    )(listing)


def _read_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def read(record_id: str) -> Response[Any]:
        return _record_response(spec, await service.get(spec, record_id))

    return get(_item(spec), summary=f"Read a {_label(spec)}", **_common(spec))(read)


def _replace_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def replace(
        record_id: str, data: Contract, request: Request[Any, Any, Any], if_match: IfMatch = None
    ) -> Response[Any]:
        version = parse_if_match(if_match)
        stored = await service.update(spec, record_id, data, version, caller_of(request))
        return _record_response(spec, stored)

    summary = f"Replace a {_label(spec)} (If-Match required)"
    return put(_item(spec), summary=summary, **_writes(spec))(_typed(replace, data=spec.model))


def _deactivate_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def deactivate(
        record_id: str, request: Request[Any, Any, Any], if_match: IfMatch = None
    ) -> Response[Any]:
        version = parse_if_match(if_match)
        stored = await service.deactivate(spec, record_id, version, caller_of(request))
        return _record_response(spec, stored)

    summary = f"Deactivate a {_label(spec)} (If-Match required)"
    return post(f"{_item(spec)}/deactivate", summary=summary, status_code=200, **_writes(spec))(
        deactivate
    )


def _history_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def history(record_id: str) -> dict[str, Any]:
        entries = await service.history(spec, record_id)
        return {"items": [msgspec.to_builtins(e) for e in entries]}

    summary = f"Who changed a {_label(spec)}, when, from what"
    return get(f"{_item(spec)}/history", summary=summary, **_common(spec))(history)


def _import_route(spec: KindSpec, service: MasterData) -> HTTPRouteHandler:
    async def bulk_import(
        request: Request[Any, Any, Any], dry_run: bool = False
    ) -> Response[dict[str, Any]]:
        parsed = _parse_import(spec, request.headers.get("Content-Type", ""), await request.body())
        report = await service.import_rows(spec, parsed, caller_of(request), dry_run=dry_run)
        if not report.counts["error"]:
            return Response(msgspec.to_builtins(report))
        first = next(r for r in report.rows if r.status == "error")
        field = first.errors[0].field if first.errors else "$"
        return problem(
            422,
            "Import refused",
            f"{report.counts['error']} row(s) in error; nothing was written "
            f"(first: row {first.row}, field {field})",
            **msgspec.to_builtins(report),
            field=field,
        )

    summary = f"Bulk import {spec.collection} (CSV or JSON), all rows or none"
    return post(
        f"/v1/{spec.collection}/import",
        summary=summary,
        status_code=200,
        **_writes(spec, _MAX_IMPORT_BYTES),
    )(bulk_import)


def _parse_import(spec: KindSpec, content_type: str, body: bytes) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv"):
        return import_formats.parse_csv(spec, body)
    if media in ("application/json", ""):
        return import_formats.parse_json(spec, body)
    raise Problem(
        415,
        "Unsupported import format",
        "send text/csv or application/json",
        [FieldError("Content-Type", media)],
    )


# -- quarantine --------------------------------------------------------------------------------
class DiscardRequest(msgspec.Struct, frozen=True, kw_only=True):
    note: str = ""


class ReleaseRequest(msgspec.Struct, frozen=True, kw_only=True):
    entity_key: str | None = None
    """Release only this entity's parked events; all parked entities when absent."""


def _parked_view(row: Parked) -> dict[str, Any]:
    """What a person needs to act: never the payload; the failures quote the offending
    values, so a read is audited."""
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


# Ids are bigserial: a larger number names nothing (and would overflow the query).
ParkedId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]
Cursor = Annotated[int | None, Parameter(ge=0, le=2**63 - 1)]
_QUARANTINE: dict[str, Any] = {
    "tags": ["quarantine"],
    "exception_handlers": EXCEPTION_HANDLERS,
    **requires(EXCEPTIONS_READ),
}
_QUARANTINE_ACTION: dict[str, Any] = {
    **_QUARANTINE,
    **requires(EXCEPTIONS_WRITE),
    "request_max_body_size": _MAX_ACTION_BYTES,
}
_PARKED = "/v1/quarantine/{parked_id:int}"


def quarantine_routes(quarantine: Quarantine) -> list[HTTPRouteHandler]:
    async def listing(
        request: Request[Any, Any, Any],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        cursor: Cursor = None,
        entity_key: str | None = None,
        reason: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        rows = await quarantine.page(
            entity_key=entity_key, reason=reason, site=site, after_id=cursor, limit=limit,
            actor=caller_of(request).actor,
        )  # fmt: skip
        return {
            "items": [_parked_view(r) for r in rows],
            "next_cursor": rows[-1].id if len(rows) == limit else None,
        }

    async def read(parked_id: ParkedId, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return _parked_view(await quarantine.get(parked_id, caller_of(request).actor))

    return [
        get("/v1/quarantine", summary="List parked events (no payloads)", **_QUARANTINE)(listing),
        get(_PARKED, summary="Read a parked event", **_QUARANTINE)(read),
        *_quarantine_actions(quarantine),
    ]


def _quarantine_actions(quarantine: Quarantine) -> list[HTTPRouteHandler]:
    async def release_one(parked_id: ParkedId, request: Request[Any, Any, Any]) -> dict[str, Any]:
        caller = caller_of(request)
        report = await quarantine.release_one(parked_id, caller.actor, caller.request_id)
        return {"released": report.released}

    async def discard(
        parked_id: ParkedId, request: Request[Any, Any, Any], data: DiscardRequest | None = None
    ) -> dict[str, Any]:
        caller = caller_of(request)
        note = data.note if data is not None else ""
        row = await quarantine.discard(parked_id, caller.actor, caller.request_id, note)
        return {"discarded": row.id, "event_id": row.event_id}

    async def release(
        request: Request[Any, Any, Any], data: ReleaseRequest | None = None
    ) -> dict[str, Any]:
        entity_key = data.entity_key if data is not None else None
        report = await quarantine.release_by_hand(entity_key, caller_of(request).actor)
        return {
            "entities": report.entities,
            "released": report.released,
            "still_parked": sorted(report.still_parked),
        }

    def action(path: str, summary: str) -> Callable[[F], HTTPRouteHandler]:
        return post(path, summary=summary, status_code=200, **_QUARANTINE_ACTION)

    return [
        action(f"{_PARKED}/release", "Re-validate and release a parked event now")(release_one),
        action(f"{_PARKED}/discard", "Discard a parked event (recorded)")(discard),
        action("/v1/quarantine/release", "Re-validate every parked entity, or one")(release),
    ]


def api_routes(service: MasterData, quarantine: Quarantine) -> list[HTTPRouteHandler]:
    routes: list[HTTPRouteHandler] = []
    for spec in SPECS:
        routes += kind_routes(spec, service)
    return routes + quarantine_routes(quarantine)
