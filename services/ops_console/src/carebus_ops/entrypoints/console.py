"""The web console (server-rendered HTML under ``/console/``; ``/`` leads there).

Pages: pipeline health, exceptions (by site and reason, filtered, one record and its
history), an entity's trace, the quarantine, per-site sync health, and a search box.
Actions (re-drive, discard, quarantine release and discard) are POSTed forms: each needs
``confirmed=yes`` (the page's confirm dialog sets it) and an actor, the ``X-Carebus-Actor``
header or else the form's ``actor`` field. Templates autoescape everything they show.
"""

from __future__ import annotations

import datetime as dt
from importlib.resources import files
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from carebus_ops.adapters.quarantine_client import QuarantineUnavailable, Refused
from carebus_ops.domain.projection import KINDS
from carebus_ops.handlers.console import Console, Done, trace_url
from carebus_ops.handlers.trace import UnknownKind
from carebus_shared.exceptions import query
from carebus_shared.exceptions.routes import ACTOR_HEADER

_MAX_ACTOR: Final = 200
_MAX_TEXT: Final = 1000
_MAX_ID: Final = 200
_MAX_UPLOAD: Final = 50 * 1024 * 1024
_PAGES: Final[dict[str, Any]] = {"include_in_schema": False}


def _age(seconds: float | None) -> str:
    """3725 → '1 h 2 m'; a person reads ages, not seconds."""
    if seconds is None:
        return "–"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} m {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} m"
    return f"{hours // 24} d {hours % 24} h"


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    env = Environment(
        loader=PackageLoader("carebus_ops", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a typo in a template fails loudly, in the tests
    )
    env.filters["age"] = _age
    env.filters["when"] = _when
    env.globals["trace_url"] = trace_url
    env.globals["kinds"] = KINDS
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def static_router() -> Router:
    return create_static_files_router(
        path="/console/static", directories=[str(files("carebus_ops") / "static")]
    )


def _page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name=name, context=context, status_code=status)


def _message(status: int, title: str, detail: str) -> Template:
    return _page("message.html", status, title=title, detail=detail, nav="")


def _done(done: Done) -> Template:
    # 200 either way: the action was taken up; the page says what came of it.
    return _page("done.html", done=done, nav="")


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _utc(value: str | None, name: str) -> dt.datetime | None:
    """A datetime-local input's value, read as UTC (the page says so)."""
    if not _blank(value):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise query.InvalidQuery(name, "must be a date and time (YYYY-MM-DDTHH:MM)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class _Refusal(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _actor_and_confirmation(request: Request[Any, Any, Any], form: Any) -> str:
    """The actor (header, else the form field); raises _Refusal when unconfirmed or anonymous."""
    if str(form.get("confirmed", "")) != "yes":
        raise _Refusal("this action needs confirmation: use the button's confirm dialog")
    actor = (request.headers.get(ACTOR_HEADER) or str(form.get("actor", ""))).strip()
    if not actor:
        raise _Refusal("say who you are (the actor field): every action is recorded with it")
    if len(actor) > _MAX_ACTOR:
        raise _Refusal(f"the actor is longer than {_MAX_ACTOR} characters")
    return actor


async def _action_form(request: Request[Any, Any, Any]) -> tuple[Any, str] | Template:
    """The posted form and its actor, or the page refusing an unconfirmed or anonymous action."""
    form = await request.form()
    try:
        return form, _actor_and_confirmation(request, form)
    except _Refusal as refusal:
        return _message(400, "Not done", refusal.detail)


async def _corrected(form: Any) -> bytes | None:
    upload = form.get("corrected_file")
    if isinstance(upload, UploadFile):
        content = await upload.read()
        if content:
            return content
    text = str(form.get("corrected_text", "") or "")
    return text.encode() if text.strip() else None


def console_routes(console: Console) -> list[HTTPRouteHandler | Router]:
    @get("/", **_PAGES)
    async def root() -> Redirect:
        return Redirect("/console/")

    @get("/console/", **_PAGES)
    async def pipeline_page() -> Template:
        return _page("pipeline.html", view=await console.pipeline_page(), nav="pipeline")

    @get("/console/sites", **_PAGES)
    async def sites_page() -> Template:
        return _page("sites.html", body=await console.sites(), nav="sites")

    @get("/console/find", **_PAGES)
    async def find(q: FromQuery[str] = "") -> Template | Redirect:
        if len(q) > _MAX_ID:
            return _message(400, "Nothing found", f"the search is longer than {_MAX_ID} characters")
        target = await console.find(q)
        if target is None:
            detail = "no exception record, entity or event has this id (yet)"
            return _page("message.html", 404, title="Nothing found", detail=detail, nav="")
        return Redirect(target)

    return [
        root,
        pipeline_page,
        sites_page,
        find,
        *_exception_routes(console),
        *_trace_routes(console),
        *_quarantine_routes(console),
        static_router(),
    ]


def _exception_routes(console: Console) -> list[HTTPRouteHandler]:
    @get("/console/exceptions", **_PAGES)
    async def exceptions_page(
        site: FromQuery[str | None] = None,
        stage: FromQuery[str | None] = None,
        reason: FromQuery[str | None] = None,
        status: FromQuery[str | None] = "open",
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        chosen = {
            "site": _blank(site), "stage": _blank(stage), "reason": _blank(reason),
            "status": _blank(status), "since": _blank(since), "until": _blank(until),
        }  # fmt: skip
        try:
            flt = query.ExceptionFilter(
                chosen["site"], chosen["stage"], chosen["reason"], chosen["status"],
                _utc(since, "since"), _utc(until, "until"),
            )  # fmt: skip
            view = await console.exceptions_page(flt, _blank(cursor))
        except query.InvalidQuery as exc:
            return _page(
                "exceptions.html", 400, view=None, chosen=chosen, error=str(exc), next_href=None,
                statuses=query.STATUSES, nav="exceptions",
            )  # fmt: skip
        next_href = None
        if view.page.next_cursor:
            kept = {name: value for name, value in chosen.items() if value}
            next_href = "/console/exceptions?" + urlencode(
                {**kept, "cursor": view.page.next_cursor}
            )
        return _page(
            "exceptions.html", view=view, chosen=chosen, error=None, next_href=next_href,
            statuses=query.STATUSES, nav="exceptions",
        )  # fmt: skip

    @get("/console/exceptions/{record_id:int}", **_PAGES)
    async def record_page(record_id: FromPath[int], show: FromQuery[str | None] = None) -> Template:
        found = await console.record_page(record_id, include_payload=show == "input")
        if found is None:
            return _message(404, "No such exception record", f"no exception record {record_id}")
        return _page("exception.html", view=found, nav="exceptions")

    @post(
        "/console/exceptions/{record_id:int}/redrive", request_max_body_size=_MAX_UPLOAD, **_PAGES
    )
    async def redrive(request: Request[Any, Any, Any], record_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        form, actor = taken
        return _done(await console.redrive(record_id, await _corrected(form), actor))

    @post("/console/exceptions/{record_id:int}/discard", **_PAGES)
    async def discard(request: Request[Any, Any, Any], record_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        form, actor = taken
        reason = str(form.get("reason", "")).strip()[:_MAX_TEXT]
        if not reason:
            return _message(400, "Not done", "a discard needs a reason")
        return _done(await console.discard(record_id, reason, actor))

    return [exceptions_page, record_page, redrive, discard]


def _trace_routes(console: Console) -> list[HTTPRouteHandler]:
    @get("/console/trace", **_PAGES)
    async def trace_form(
        kind: FromQuery[str | None] = None, id: FromQuery[str | None] = None
    ) -> Template | Redirect:
        if _blank(kind) and _blank(id):
            return Redirect(trace_url(str(kind).strip(), str(id).strip()))
        return _page(
            "trace.html", trace=None, kind=kind or "appointment", nav="trace", follow=False
        )

    @get("/console/trace/{kind:str}/{entity_id:str}", **_PAGES)
    async def trace_page(
        request: Request[Any, Any, Any],
        kind: FromPath[str],
        entity_id: FromPath[str],
        follow: FromQuery[str | None] = None,
    ) -> Template:
        if len(entity_id) > _MAX_ID:
            return _message(400, "Bad id", f"the id is longer than {_MAX_ID} characters")
        # A trace names a patient's visits: every look is audited under who looked.
        viewer = (request.headers.get(ACTOR_HEADER) or "console").strip()[:_MAX_ACTOR]
        try:
            found = await console.trace(kind, entity_id, viewer)
        except UnknownKind as exc:
            return _message(400, "Unknown entity kind", str(exc))
        if found is None:
            return _message(404, "Not traced (yet)", f"the tracker has seen no {kind} with this id")
        return _page("trace.html", trace=found, kind=kind, nav="trace", follow=bool(follow))

    return [trace_form, trace_page]


def _quarantine_routes(console: Console) -> list[HTTPRouteHandler]:
    @get("/console/quarantine", **_PAGES)
    async def quarantine_page(
        site: FromQuery[str | None] = None,
        reason: FromQuery[str | None] = None,
        entity_key: FromQuery[str | None] = None,
        cursor: FromQuery[int | None] = None,
    ) -> Template:
        chosen = {"site": _blank(site), "reason": _blank(reason), "entity_key": _blank(entity_key)}
        try:
            found = await console.quarantine_page(
                chosen["site"], chosen["reason"], chosen["entity_key"], cursor
            )
        except QuarantineUnavailable as exc:
            return _message(503, "The validator is unavailable", str(exc))
        if isinstance(found, Refused):
            return _message(400, found.title, found.detail)
        return _page("quarantine.html", page=found, chosen=chosen, nav="quarantine")

    @post("/console/quarantine/{parked_id:int}/release", **_PAGES)
    async def release(request: Request[Any, Any, Any], parked_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        _, actor = taken
        return _done(await console.release_parked(parked_id, actor))

    @post("/console/quarantine/{parked_id:int}/discard", **_PAGES)
    async def discard(request: Request[Any, Any, Any], parked_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        form, actor = taken
        note = str(form.get("note", "")).strip()[:_MAX_TEXT]
        if not note:
            return _message(400, "Not done", "a discard needs a note saying why")
        return _done(await console.discard_parked(parked_id, note, actor))

    return [quarantine_page, release, discard]
