"""The web console (server-rendered HTML under ``/console/``; ``/`` leads there).

Pages: pipeline health, exceptions (by site and reason, filtered, one record and its
history), an entity's trace, the quarantine, per-site sync health, and a search box.
Actions (re-drive, discard, quarantine release and discard) are POSTed forms: each needs
``confirmed=yes`` (the page's confirm dialog sets it) and the session's CSRF token; the
actor is the signed-in person. A person signs in at ``/console/login`` with their API key,
kept in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) and checked on every request
like any key, so revoking it ends the session. Templates autoescape everything they show.
"""

from __future__ import annotations

import datetime as dt
from importlib.resources import files
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
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
from carebus_shared.auth.guard import OPT_SESSION, SESSION_COOKIE, HttpAuth, csrf_token
from carebus_shared.auth.principal import actor_of, principal_of
from carebus_shared.auth.scopes import EXCEPTIONS_WRITE, OPS_READ, PHI_READ, PUBLIC, requires
from carebus_shared.exceptions import query

_MAX_TEXT: Final = 1000
_MAX_ID: Final = 200
_MAX_UPLOAD: Final = 50 * 1024 * 1024
_MAX_FORM: Final = 64 * 1024
_LOGIN: Final = "/console/login"
_COOKIE_PATH: Final = "/console"


def _to_login(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """A browser without a (valid) session goes to the sign-in page, then back here."""
    back = request.url.path if request.method == "GET" else "/console/"
    return Redirect(f"{_LOGIN}?{urlencode({'next': back})}")


def _forbidden(_: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    return _message(403, "Not allowed", exc.detail)


def _session(scope: str) -> dict[str, Any]:
    """A page or action of a signed-in person holding ``scope``."""
    needs = requires(scope)
    return {
        "include_in_schema": False,
        "opt": {**needs["opt"], OPT_SESSION: True},
        "exception_handlers": {
            NotAuthorizedException: _to_login,
            PermissionDeniedException: _forbidden,
        },
    }


_PAGES: Final = _session(OPS_READ)
_ACTIONS: Final = {**_session(EXCEPTIONS_WRITE), "request_max_body_size": _MAX_FORM}


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
    env.globals["csrf"] = _csrf
    env.globals["signed_in"] = _signed_in
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def _csrf(request: Request[Any, Any, Any]) -> str:
    key = request.cookies.get(SESSION_COOKIE)
    return csrf_token(key) if key else ""


def _signed_in(request: Request[Any, Any, Any]) -> str:
    try:
        return principal_of(request).name
    except RuntimeError:  # the sign-in page: nobody yet
        return ""


def static_router() -> Router:
    # The style sheet and script hold nothing secret; the sign-in page needs them.
    return create_static_files_router(
        path="/console/static",
        directories=[str(files("carebus_ops") / "static")],
        opt=PUBLIC["opt"],
        include_in_schema=False,
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
    """The signed-in person; raises _Refusal when the action is unconfirmed."""
    if str(form.get("confirmed", "")) != "yes":
        raise _Refusal("this action needs confirmation: use the button's confirm dialog")
    return actor_of(request)


async def _action_form(request: Request[Any, Any, Any]) -> tuple[Any, str] | Template:
    """The posted form and its actor, or the page refusing an unconfirmed action."""
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


def _safe_next(target: str) -> str:
    """Only back into the console: never an open redirect."""
    ok = target.startswith("/console/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/console/"


def _signin_page(status: int, error: str | None, back: str) -> Template:
    return _page("login.html", status, error=error, next=back, nav="")


def session_routes(auth: HttpAuth) -> list[HTTPRouteHandler]:
    @get(_LOGIN, include_in_schema=False, **PUBLIC)
    async def login_form(next: FromQuery[str] = "/console/") -> Template:
        return _signin_page(200, None, _safe_next(next))

    @post(_LOGIN, include_in_schema=False, request_max_body_size=_MAX_FORM, **PUBLIC)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        key, back = str(form.get("key", "")).strip(), _safe_next(str(form.get("next", "")))
        try:
            person = await auth.authenticate(key)
        except NotAuthorizedException:
            return _signin_page(401, "That key is unknown or revoked.", back)
        if OPS_READ not in person.scopes:
            return _signin_page(403, f"That key lacks {OPS_READ}.", back)
        cookie = Cookie(
            key=SESSION_COOKIE, value=key, path=_COOKIE_PATH, httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return Redirect(back, status_code=303, cookies=[cookie])

    @post("/console/logout", status_code=303, **_session(OPS_READ))
    async def logout() -> Response[Any]:
        response = Redirect(_LOGIN, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=_COOKIE_PATH)
        return response

    return [login_form, login, logout]


def console_routes(console: Console, auth: HttpAuth) -> list[HTTPRouteHandler | Router]:
    @get("/", include_in_schema=False, **PUBLIC)
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
        *session_routes(auth),
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
    async def record_page(
        request: Request[Any, Any, Any],
        record_id: FromPath[int],
        show: FromQuery[str | None] = None,
    ) -> Template:
        wanted = show == "input"
        if wanted and PHI_READ not in principal_of(request).scopes:
            return _message(403, "Not allowed", f"the kept input is patient data: {PHI_READ}")
        found = await console.record_page(record_id, include_payload=wanted)
        if found is None:
            return _message(404, "No such exception record", f"no exception record {record_id}")
        return _page("exception.html", view=found, nav="exceptions")

    @post(
        "/console/exceptions/{record_id:int}/redrive",
        **{**_ACTIONS, "request_max_body_size": _MAX_UPLOAD},
    )
    async def redrive(request: Request[Any, Any, Any], record_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        form, actor = taken
        return _done(await console.redrive(record_id, await _corrected(form), actor))

    @post("/console/exceptions/{record_id:int}/discard", **_ACTIONS)
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
        viewer = actor_of(request)
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

    @post("/console/quarantine/{parked_id:int}/release", **_ACTIONS)
    async def release(request: Request[Any, Any, Any], parked_id: FromPath[int]) -> Template:
        taken = await _action_form(request)
        if isinstance(taken, Template):
            return taken
        _, actor = taken
        return _done(await console.release_parked(parked_id, actor))

    @post("/console/quarantine/{parked_id:int}/discard", **_ACTIONS)
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
