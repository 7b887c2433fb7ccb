"""The HTTP client and the "http" connector against scripted ERP answers (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from carebus_erp_poster.adapters.connector import ErpUnavailable
from carebus_erp_poster.adapters.connectors.rest_api import RestApiConnector
from carebus_erp_poster.adapters.erp_http.client import ClientPolicy, ResilientClient
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.domain.circuit_breaker import BreakerState
from carebus_erp_poster.domain.journals import Posting
from carebus_erp_poster.domain.results import Accepted, Booked, Refused, Unavailable
from tests.support.erp_poster import journal

POLICY = {"RateLimit-Policy": "1000;w=1"}
FAST = ClientPolicy(
    timeout_s=1.0,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    breaker_failures=3,
    breaker_open_s=0.3,
    rate_ceiling_per_s=1000,
)


class ScriptedErp:
    """Answers from a function of the request number; records when each request arrived."""

    def __init__(self, answer: Callable[[int, httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.arrivals: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.arrivals.append(time.monotonic())
        return self.answer(len(self.arrivals), request)


def client(erp: ScriptedErp, policy: ClientPolicy = FAST) -> ResilientClient:
    metrics = PosterMetrics(CollectorRegistry())
    return ResilientClient("http://erp.test", policy, metrics, transport=httpx.MockTransport(erp))


async def send(c: ResilientClient, deadline_s: float = 5.0) -> httpx.Response:
    return await c.send(
        "post", "POST", "/api/v1/journals", content=b"{}", headers={},
        deadline=time.monotonic() + deadline_s,
    )  # fmt: skip


async def test_5xx_and_timeouts_are_retried_with_backoff_until_an_answer() -> None:
    def answer(n: int, _: httpx.Request) -> httpx.Response:
        if n == 1:
            return httpx.Response(502, headers=POLICY)
        if n == 2:
            raise httpx.ReadTimeout("slow ERP")
        if n == 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(202, headers=POLICY, json={"ok": True})

    erp = ScriptedErp(answer)
    c = client(erp, ClientPolicy(**{**FAST.__dict__, "breaker_failures": 10}))
    response = await send(c)
    assert response.status_code == 202
    assert len(erp.arrivals) == 4
    assert c.breaker.state is BreakerState.CLOSED


async def test_a_validation_error_is_final_and_not_retried() -> None:
    erp = ScriptedErp(lambda n, _: httpx.Response(422, headers=POLICY, json={"title": "no"}))
    response = await send(client(erp))
    assert response.status_code == 422
    assert len(erp.arrivals) == 1


async def test_429_retry_after_is_respected_before_the_next_request() -> None:
    def answer(n: int, _: httpx.Request) -> httpx.Response:
        if n == 1:
            return httpx.Response(429, headers={**POLICY, "Retry-After": "0.4"})
        return httpx.Response(202, headers=POLICY)

    erp = ScriptedErp(answer)
    c = client(erp)
    # Several requests in flight: none may go before the Retry-After has passed.
    responses = await asyncio.gather(*(send(c) for _ in range(4)))
    assert all(r.status_code == 202 for r in responses)
    first, rest = erp.arrivals[0], erp.arrivals[1:]
    assert len(rest) == 4
    assert min(rest) - first >= 0.4


async def test_the_circuit_opens_waits_instead_of_hammering_and_probes_once() -> None:
    down_until = time.monotonic() + 1.0

    def answer(n: int, _: httpx.Request) -> httpx.Response:
        if time.monotonic() < down_until:
            return httpx.Response(503, headers=POLICY)
        return httpx.Response(202, headers=POLICY)

    erp = ScriptedErp(answer)
    c = client(erp, ClientPolicy(**{**FAST.__dict__, "max_attempts": 100}))
    responses = await asyncio.gather(*(send(c, deadline_s=5.0) for _ in range(6)))
    assert all(r.status_code == 202 for r in responses)
    during = [t for t in erp.arrivals if t < down_until]
    # 3 failures open it; then one probe per 0.3 s open period: about 3 + 1/0.3, not hundreds.
    assert len(during) <= 3 + 6 + 4
    assert c.breaker.opened_count >= 1
    assert c.breaker.state is BreakerState.CLOSED


async def test_past_the_deadline_an_open_circuit_answers_unavailable_with_its_remaining_time() -> (
    None
):
    erp = ScriptedErp(lambda n, _: httpx.Response(503, headers=POLICY))
    c = client(erp, ClientPolicy(**{**FAST.__dict__, "breaker_open_s": 30.0, "max_attempts": 50}))
    with pytest.raises(ErpUnavailable) as caught:
        await send(c, deadline_s=0.5)
    assert len(erp.arrivals) == 3  # then it waited: no request while open
    assert 25.0 < caught.value.retry_after_s <= 30.0


async def test_requests_follow_the_advertised_rate_and_start_with_a_single_probe() -> None:
    erp = ScriptedErp(lambda n, _: httpx.Response(202, headers={"RateLimit-Policy": "4;w=1"}))
    c = client(erp)
    await asyncio.gather(*(send(c) for _ in range(10)))
    arrivals = erp.arrivals
    assert len(arrivals) == 10
    for i, start in enumerate(arrivals):
        assert len([t for t in arrivals[i:] if t < start + 1.0]) <= 4


def _posting(i: int, **kwargs: object) -> Posting:
    return Posting(journal("conn", i, **kwargs), i, "erp.journal.requested.v1.SITE01")  # type: ignore[arg-type]


async def test_the_connector_maps_erp_answers_to_results() -> None:
    def answer(n: int, request: httpx.Request) -> httpx.Response:
        key = request.headers["idempotency-key"]
        at = "2025-03-14T10:00:00Z"
        if key.endswith("-1"):
            receipt = {"request_id": "REQ-1", "status": "pending", "accepted_at": at}
            return httpx.Response(202, headers=POLICY, json=receipt)
        if key.endswith("-2"):
            receipt = {"request_id": "REQ-2", "status": "confirmed", "accepted_at": at,
                       "document_number": "JV-9", "fiscal_period": "2025-03"}  # fmt: skip
            return httpx.Response(202, headers=POLICY, json=receipt)
        if key.endswith("-3"):
            return httpx.Response(
                422, headers=POLICY,
                json={"title": "Journal refused", "status": 422, "errors": [
                    {"code": "unknown_account", "message": "account 9999 is unknown",
                     "path": "lines[1].account", "value": "9999"}]},
            )  # fmt: skip
        return httpx.Response(503, headers=POLICY)

    erp = ScriptedErp(answer)
    connector = RestApiConnector(client(erp), concurrency=4, hold_s=0.3, confirm_timeout_s=1.0)
    results = await connector.post(None, [_posting(i) for i in (1, 2, 3, 4)])
    assert isinstance(results[0], Accepted)
    assert results[0].erp_request_id == "REQ-1"
    assert isinstance(results[1], Booked)
    assert results[1].document_number == "JV-9"
    refused = results[2]
    assert isinstance(refused, Refused)
    assert (refused.code, refused.path, refused.value) == (
        "unknown_account", "$.lines[1].account", "9999",
    )  # fmt: skip
    assert refused.answer.startswith("HTTP 422")
    assert "9999" in refused.answer
    assert isinstance(results[3], Unavailable)
