"""The ERP sandbox behaves like a cloud ERP's journal API (in-process, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from carebus_erp_poster.adapters.erp_http.journal_api import journal_body
from carebus_erp_sandbox.app import build
from carebus_erp_sandbox.config import Settings, parse_windows
from tests.support import auth
from tests.support.erp_poster import journal, private_database

Client = AsyncTestClient[Any]


def body(i: int, run: str = "sbx", **kwargs: Any) -> bytes:
    return msgspec.json.encode(journal_body(journal(run, i, **kwargs), f"JE-{run}-{i}"))


@pytest.fixture(scope="module")
async def sandbox_db(database_url: str) -> AsyncIterator[str]:
    async for dsn in private_database(database_url):
        yield dsn


async def _client(dsn: str, **settings: Any) -> AsyncIterator[Client]:
    defaults: dict[str, Any] = {"latency_ms": 0, "latency_jitter_ms": 0, "rate_limit": 0}
    app = build(Settings(database_url=dsn, **{**defaults, **settings}))
    # The control panel needs sandbox:admin: the tests' client holds it.
    async with AsyncTestClient(app=app) as client:
        client.headers.update(auth.HEADERS)
        yield client


@pytest.fixture
async def client(sandbox_db: str) -> AsyncIterator[Client]:
    async for c in _client(sandbox_db, confirm_delay_s=0.3, closed_periods="2024-12"):
        yield c


async def post(client: Client, key: str, content: bytes) -> Any:
    return await client.post("/api/v1/journals", content=content, headers={"Idempotency-Key": key})


async def test_same_key_same_body_replays_the_receipt_and_books_once(client: Client) -> None:
    first = await post(client, "k-replay", body(1))
    again = await post(client, "k-replay", body(1))
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["request_id"] == again.json()["request_id"]
    stats = (await client.get("/sandbox/stats")).json()
    assert stats["journals"]["replays"] >= 1


async def test_same_key_with_another_journal_is_a_conflict(client: Client) -> None:
    assert (await post(client, "k-conflict", body(2))).status_code == 202
    other = await post(client, "k-conflict", body(3))
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_a_missing_idempotency_key_is_refused(client: Client) -> None:
    response = await client.post("/api/v1/journals", content=body(4))
    assert response.status_code == 400


async def test_unknown_account_and_unbalanced_journals_get_422_with_the_errors(
    client: Client,
) -> None:
    unknown = await post(client, "k-unknown", body(5, accounts=("1200", "9999")))
    assert unknown.status_code == 422
    [error] = unknown.json()["errors"]
    assert error == {
        "code": "unknown_account",
        "message": "account 9999 is not in the chart of accounts",
        "path": "lines[1].account",
        "value": "9999",
    }
    unbalanced = await post(client, "k-unbalanced", body(6, credit_minor=100))
    assert unbalanced.status_code == 422
    assert [e["code"] for e in unbalanced.json()["errors"]] == ["unbalanced"]
    # A refused request is not stored against its key: after the fix it is accepted.
    assert (await client.post("/sandbox/accounts", json={"codes": ["9999"]})).status_code == 204
    assert (await post(client, "k-unknown", body(5, accounts=("1200", "9999")))).status_code == 202


async def test_confirmation_is_delayed_and_closed_periods_are_rejected(client: Client) -> None:
    import datetime as dt

    ok = (await post(client, "k-confirm", body(7))).json()
    closed = (await post(client, "k-closed", body(8, posting_date=dt.date(2024, 12, 31)))).json()
    assert ok["status"] == closed["status"] == "pending"
    query = {"request_ids": [ok["request_id"], closed["request_id"], "REQ-nope"]}
    early = (await client.post("/api/v1/journals/status", json=query)).json()["journals"]
    assert [j["status"] for j in early] == ["pending", "pending", "unknown"]
    await asyncio.sleep(0.4)
    late = (await client.post("/api/v1/journals/status", json=query)).json()["journals"]
    assert late[0]["status"] == "confirmed"
    assert late[0]["document_number"].startswith("JV-")
    assert late[0]["fiscal_period"] == "2025-03"
    assert (late[1]["status"], late[1]["error_code"]) == ("rejected", "PERIOD-CLOSED")


async def test_rate_limit_is_advertised_and_enforced_over_a_sliding_window(
    sandbox_db: str,
) -> None:
    async for client in _client(sandbox_db, rate_limit=5, rate_window_s=1.0):
        answers = [await post(client, f"k-rate-{i}", body(100 + i)) for i in range(7)]
        assert [a.status_code for a in answers] == [202] * 5 + [429] * 2
        assert answers[0].headers["ratelimit-policy"] == "5;w=1"
        assert answers[4].headers["ratelimit-remaining"] == "0"
        assert int(answers[5].headers["retry-after"]) >= 1
        reasons = [r["reason"] for r in (await client.get("/sandbox/requests")).json()]
        assert reasons.count("throttled") == 2


async def test_outages_storms_and_random_errors(sandbox_db: str) -> None:
    async for client in _client(sandbox_db, error_rate=1.0):
        assert (await post(client, "k-err", body(200))).status_code == 500
    async for client in _client(sandbox_db):
        await client.post("/sandbox/outage", json={"duration_s": 0.3})
        assert (await post(client, "k-out", body(201))).status_code == 503
        await asyncio.sleep(0.35)
        assert (await post(client, "k-out", body(201))).status_code == 202
        await client.post("/sandbox/storm", json={"duration_s": 0.3, "retry_after_s": 2})
        stormy = await post(client, "k-storm", body(202))
        assert (stormy.status_code, stormy.headers["retry-after"]) == (429, "2")


async def test_latency_is_applied(sandbox_db: str) -> None:
    async for client in _client(sandbox_db, latency_ms=80, latency_jitter_ms=0):
        started = time.monotonic()
        await post(client, "k-slow", body(300))
        assert time.monotonic() - started >= 0.08


def test_outage_windows_are_parsed_and_bad_ones_named() -> None:
    assert parse_windows("30-90, 300-330") == [(30.0, 90.0), (300.0, 330.0)]
    with pytest.raises(ValueError, match="'90-30'"):
        parse_windows("90-30")
