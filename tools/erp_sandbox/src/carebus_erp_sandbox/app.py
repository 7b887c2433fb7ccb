"""The sandbox's HTTP app: the journal API (misbehaving on request) and its control panel.

The control panel (/sandbox/*) needs a carebus client with sandbox:admin, checked by the
shared guard against the same client store. The journal API stands for a third party's
ERP: it takes whatever bearer token the poster is configured with (``erp_token``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery, JSONBody

from carebus_contracts.erp_journal_api import (
    FieldError,
    JournalBody,
    JournalReceipt,
    JournalStatus,
    StatusList,
    StatusQuery,
)
from carebus_erp_sandbox import store
from carebus_erp_sandbox.config import PACKAGE, SCHEMA, Settings
from carebus_erp_sandbox.faults import Faults, Knobs, request_traceparent
from carebus_erp_sandbox.validation import problems
from carebus_shared.auth import store as auth_store
from carebus_shared.auth.guard import AuthSettings, HttpAuth
from carebus_shared.auth.scopes import PUBLIC, SANDBOX_ADMIN, requires
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.http.headers import SecurityHeaders
from carebus_shared.http.problems import EXCEPTION_HANDLERS, problem

_decode_body = msgspec.json.Decoder(JournalBody).decode
_decode_query = msgspec.json.Decoder(StatusQuery).decode
_encode = msgspec.json.Encoder().encode
_MAX_API_BODY = 4 * 1024 * 1024  # a journal, or a status query for a batch of them


class OutageRequest(msgspec.Struct, frozen=True):
    duration_s: float
    mode: str | None = None  # unavailable | hang


class StormRequest(msgspec.Struct, frozen=True):
    duration_s: float
    retry_after_s: float = 2.0


class AccountsRequest(msgspec.Struct, frozen=True):
    codes: list[str]


class KnobsPatch(msgspec.Struct, frozen=True, omit_defaults=True):
    rate_limit: int | None = None
    rate_window_s: float | None = None
    latency_ms: float | None = None
    latency_jitter_ms: float | None = None
    error_rate: float | None = None
    confirm_delay_s: float | None = None
    closed_periods: list[str] | None = None


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.faults = Faults(Knobs.from_settings(settings, time.monotonic()))
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the sandbox database is not open yet")
        return self._pool

    async def open(self) -> None:
        conn = await asyncpg.connect(self.settings.database_url, timeout=10)
        try:
            await migrate(conn, SCHEMA, load_migrations(PACKAGE))
            await migrate(conn, auth_store.OWNER, load_migrations(auth_store.PACKAGE))
            codes = [c.strip() for c in self.settings.accounts.split(",") if c.strip()]
            await store.add_accounts(conn, codes)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=10)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    # -- the API gate: everything a real ERP does to a client before reading its request --
    def _rate_headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        k = self.faults.knobs
        if k.rate_limit <= 0:
            return {}
        return {
            "RateLimit-Policy": self.faults.policy_header(),
            "RateLimit-Limit": str(k.rate_limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(0, round(reset_s + 0.4999))),
        }

    async def gate(self, path: str) -> tuple[Response[Any] | None, dict[str, str]]:
        """An early answer (outage, storm, limit, random error), or None and the headers."""
        now = time.monotonic()
        faults = self.faults
        if faults.in_outage(now):
            if faults.knobs.outage_mode == "hang":
                await asyncio.sleep(faults.knobs.hang_s)
            faults.record(path, 503, "outage")
            return problem(503, "ERP unavailable", "scheduled outage"), {}
        storm = faults.storm_retry_after(now)
        if storm is not None:
            faults.record(path, 429, "storm")
            headers = {"Retry-After": f"{storm:g}", **self._rate_headers(0, storm)}
            return problem(429, "Too many requests", "throttling storm", headers=headers), headers
        admitted, remaining, reset_s = faults.limiter.admit(now)
        headers = self._rate_headers(remaining, reset_s)
        if not admitted:
            faults.record(path, 429, "throttled")
            wait = str(max(1, round(reset_s + 0.4999)))
            limited = {**headers, "Retry-After": wait}
            return problem(
                429, "Too many requests", "rate limit exceeded", headers=limited
            ), headers
        await asyncio.sleep(faults.latency_s())
        if faults.fails_randomly():
            faults.record(path, 500, "error")
            return problem(500, "Internal error", "injected failure", headers=headers), headers
        return None, headers

    async def create(self, request: Request[Any, Any, Any]) -> Response[Any]:
        path = "/api/v1/journals"
        request_traceparent.set(request.headers.get("traceparent"))
        early, headers = await self.gate(path)
        if early is not None:
            return early
        key = request.headers.get("idempotency-key", "").strip()
        if not key:
            self.faults.record(path, 400, "invalid")
            detail = "a journal is posted with an Idempotency-Key header"
            return problem(400, "Idempotency-Key header required", detail, headers=headers)
        raw = await request.body()
        try:
            body = _decode_body(raw)
        except msgspec.DecodeError as exc:
            self.faults.record(path, 400, "invalid")
            return problem(400, "Malformed journal", str(exc), headers=headers)
        body_hash = hashlib.sha256(raw).hexdigest()
        async with self.pool.acquire() as conn:
            stored = await store.by_key(conn, key)
            if stored is None:
                unknown = await store.unknown_accounts(conn, [ln.account for ln in body.lines])
                errors = problems(body) + _unknown_account_errors(body, unknown)
                if errors:
                    self.faults.record(path, 422, "invalid")
                    detail = f"{len(errors)} error(s) in the journal"
                    return problem(422, "Journal refused", detail, headers=headers, errors=errors)
                stored = await store.accept(
                    conn,
                    key=key,
                    body_hash=body_hash,
                    journal_id=body.journal_id,
                    company=body.company,
                    posting_date=body.posting_date,
                    body=raw,
                    confirm_delay_s=self.faults.knobs.confirm_delay_s,
                )
                if stored is not None:
                    if self.faults.knobs.confirm_delay_s == 0:
                        await store.decide_due(
                            conn, self.faults.knobs.closed_periods, [stored.request_id]
                        )
                        stored = (await store.statuses(conn, [stored.request_id]))[
                            stored.request_id
                        ]
                    self.faults.record(path, 202, "accepted")
                    return _receipt(stored, 202, headers)
                stored = await store.by_key(conn, key)  # lost a race with the same key
                assert stored is not None
            if stored.body_hash != body_hash:
                self.faults.record(path, 409, "conflict")
                title = "Idempotency key reused with a different journal"
                detail = f"{key} was accepted with another journal body"
                return problem(409, title, detail, headers=headers)
            await store.count_replay(conn, key)
        self.faults.record(path, 200, "replayed")
        return _receipt(stored, 200, {**headers, "Idempotent-Replayed": "true"})

    async def status(self, request: Request[Any, Any, Any]) -> Response[Any]:
        path = "/api/v1/journals/status"
        request_traceparent.set(request.headers.get("traceparent"))
        early, headers = await self.gate(path)
        if early is not None:
            return early
        try:
            query = _decode_query(await request.body())
        except msgspec.DecodeError as exc:
            self.faults.record(path, 400, "invalid")
            return problem(400, "Malformed status query", str(exc), headers=headers)
        async with self.pool.acquire() as conn:
            await store.decide_due(conn, self.faults.knobs.closed_periods, query.request_ids)
            found = await store.statuses(conn, query.request_ids)
        journals = [
            _status(found[rid]) if rid in found else JournalStatus(request_id=rid, status="unknown")
            for rid in query.request_ids
        ]
        self.faults.record(path, 200, "status")
        return Response(
            _encode(StatusList(journals=journals)),
            status_code=200,
            media_type="application/json",
            headers=headers,
        )

    def stats(self) -> dict[str, Any]:
        reasons = Counter(entry.reason for entry in self.faults.log)
        return {"requests": len(self.faults.log), "by_reason": dict(reasons)}


def _unknown_account_errors(body: JournalBody, unknown: set[str]) -> list[FieldError]:
    return [
        FieldError(
            code="unknown_account",
            message=f"account {line.account} is not in the chart of accounts",
            path=f"lines[{i}].account",
            value=line.account,
        )
        for i, line in enumerate(body.lines)
        if line.account in unknown
    ]


def _receipt(stored: store.Stored, status: int, headers: dict[str, str]) -> Response[bytes]:
    receipt = JournalReceipt(
        request_id=stored.request_id,
        status="confirmed" if stored.status == "confirmed" else "pending",
        accepted_at=stored.accepted_at,
        document_number=stored.document_number,
        fiscal_period=stored.fiscal_period,
    )
    return Response(
        _encode(receipt), status_code=status, media_type="application/json", headers=headers
    )


def _status(stored: store.Stored) -> JournalStatus:
    return JournalStatus(
        request_id=stored.request_id,
        status=stored.status,
        document_number=stored.document_number,
        fiscal_period=stored.fiscal_period,
        decided_at=stored.decided_at,
        error_code=stored.error_code,
        message=stored.error_message,
    )


def build(settings: Settings) -> Litestar:
    sandbox = Sandbox(settings)
    auth = HttpAuth(lambda: sandbox.pool, AuthSettings())

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await sandbox.open()
        try:
            yield
        finally:
            await sandbox.close()

    return Litestar(
        route_handlers=[*_api_routes(sandbox), *_control_routes(sandbox)],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        guards=[auth.guard],
        middleware=[SecurityHeaders],
    )


def _api_routes(sandbox: Sandbox) -> list[HTTPRouteHandler]:
    """What the poster's "http" connector calls, as a cloud ERP's journal API would."""

    @post("/api/v1/journals", request_max_body_size=_MAX_API_BODY, **PUBLIC)
    async def create_journal(request: Request[Any, Any, Any]) -> Response[Any]:
        return await sandbox.create(request)

    @post("/api/v1/journals/status", request_max_body_size=_MAX_API_BODY, **PUBLIC)
    async def journal_statuses(request: Request[Any, Any, Any]) -> Response[Any]:
        return await sandbox.status(request)

    @get("/health/live", sync_to_thread=False, **PUBLIC)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    return [create_journal, journal_statuses, live]


_ADMIN = requires(SANDBOX_ADMIN)
_ADMIN_WRITE = {**_ADMIN, "request_max_body_size": 64 * 1024}


def _control_routes(sandbox: Sandbox) -> list[HTTPRouteHandler]:
    """The test and demo knobs: statistics, the request log, outages, storms, settings."""

    @get("/sandbox/stats", **_ADMIN)
    async def stats() -> dict[str, Any]:
        async with sandbox.pool.acquire() as conn:
            totals = await store.totals(conn)
        return {**sandbox.stats(), "journals": totals}

    @get("/sandbox/requests", sync_to_thread=False, **_ADMIN)
    def requests(since: FromQuery[float] = 0.0) -> list[dict[str, Any]]:
        """Every API request since ``since`` (epoch seconds): time, path, status, reason."""
        return [
            {
                "at": e.at,
                "path": e.path,
                "status": e.status,
                "reason": e.reason,
                "traceparent": e.traceparent,
            }
            for e in sandbox.faults.log
            if e.at >= since
        ]

    @post("/sandbox/outage", status_code=204, **_ADMIN_WRITE)
    async def outage(data: JSONBody[OutageRequest]) -> None:
        now = time.monotonic()
        if data.mode in ("unavailable", "hang"):
            sandbox.faults.knobs.outage_mode = data.mode
        sandbox.faults.knobs.outages.append((now, now + data.duration_s))

    @post("/sandbox/storm", status_code=204, **_ADMIN_WRITE)
    async def storm(data: JSONBody[StormRequest]) -> None:
        now = time.monotonic()
        sandbox.faults.knobs.storms.append((now, now + data.duration_s, data.retry_after_s))

    @post("/sandbox/accounts", status_code=204, **_ADMIN_WRITE)
    async def accounts(data: JSONBody[AccountsRequest]) -> None:
        async with sandbox.pool.acquire() as conn:
            await store.add_accounts(conn, data.codes)

    @patch("/sandbox/settings", **_ADMIN_WRITE)
    async def settings_patch(data: JSONBody[KnobsPatch]) -> dict[str, Any]:
        knobs = sandbox.faults.knobs
        for name, value in msgspec.structs.asdict(data).items():
            if value is not None and name not in ("rate_limit", "rate_window_s"):
                setattr(knobs, name, value)
        if data.rate_limit is not None or data.rate_window_s is not None:
            sandbox.faults.reconfigure_rate(
                knobs.rate_limit if data.rate_limit is None else data.rate_limit,
                knobs.rate_window_s if data.rate_window_s is None else data.rate_window_s,
            )
        return {
            "rate_limit": knobs.rate_limit,
            "rate_window_s": knobs.rate_window_s,
            "latency_ms": knobs.latency_ms,
            "error_rate": knobs.error_rate,
            "confirm_delay_s": knobs.confirm_delay_s,
            "closed_periods": knobs.closed_periods,
        }

    return [stats, requests, outage, storm, accounts, settings_patch]
