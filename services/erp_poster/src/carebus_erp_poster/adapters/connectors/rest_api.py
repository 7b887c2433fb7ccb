"""Connector "http": a cloud ERP's REST journal API (the one the ERP sandbox serves).

Posting: ``POST /api/v1/journals`` with ``Idempotency-Key`` = the journal's key, so a
crash between the ERP's answer and our commit, or two replicas racing, books it once.
Confirmation: the ERP books asynchronously; ``confirm`` polls ``/api/v1/journals/status``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from carebus_contracts.erp_journal_api import JournalReceipt, Problem, StatusList, StatusQuery
from carebus_erp_poster.adapters.connector import ErpUnavailable
from carebus_erp_poster.adapters.erp_http.client import ClientPolicy, ResilientClient
from carebus_erp_poster.adapters.erp_http.journal_api import journal_body
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.config import Settings
from carebus_erp_poster.domain.journals import JournalState, Posting
from carebus_erp_poster.domain.results import (
    Accepted,
    Booked,
    Confirmation,
    Confirmed,
    PostResult,
    Refused,
    Rejected,
    StillPending,
    Unavailable,
)
from carebus_shared.tracing import context as trace
from carebus_shared.tracing.context import with_trace

_JSON = {"Content-Type": "application/json"}
_encode = msgspec.json.Encoder().encode
_receipt = msgspec.json.Decoder(JournalReceipt).decode
_problem = msgspec.json.Decoder(Problem).decode
_statuses = msgspec.json.Decoder(StatusList).decode
_ANSWER_MAX = 2000  # characters of the ERP's answer kept in the exception store


class RestApiConnector:
    name = "http"
    atomic_with_inbox = False

    def __init__(
        self, client: ResilientClient, concurrency: int, hold_s: float, confirm_timeout_s: float
    ) -> None:
        self.client = client
        self._concurrency = concurrency
        self._hold_s = hold_s
        self._confirm_timeout_s = confirm_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, metrics: PosterMetrics) -> RestApiConnector:
        policy = ClientPolicy(
            timeout_s=settings.erp_timeout_s,
            rate_ceiling_per_s=settings.erp_rate_limit_per_s,
            max_attempts=settings.erp_max_attempts,
            backoff_base_s=settings.erp_backoff_base_s,
            backoff_max_s=settings.erp_backoff_max_s,
            max_retry_after_s=settings.erp_max_retry_after_s,
            breaker_failures=settings.breaker_failures,
            breaker_open_s=settings.breaker_open_s,
        )
        headers = {"Authorization": f"Bearer {settings.erp_token}"} if settings.erp_token else {}
        client = ResilientClient(settings.erp_base_url, policy, metrics, headers)
        return cls(client, settings.erp_concurrency, settings.erp_hold_s, settings.erp_timeout_s)

    async def post(self, conn: Any, postings: Sequence[Posting]) -> list[PostResult]:
        # One deadline for the whole batch: while the circuit is open the batch waits (its
        # messages kept alive with in-progress acks) instead of burning deliveries.
        deadline = time.monotonic() + self._hold_s
        gate = asyncio.Semaphore(self._concurrency)

        async def one(posting: Posting) -> PostResult:
            async with gate:
                return await self._post_one(posting, deadline)

        return list(await asyncio.gather(*(one(p) for p in postings)))

    async def _post_one(self, posting: Posting, deadline: float) -> PostResult:
        body = _encode(journal_body(posting.request, posting.key))
        try:
            response = await self.client.send(
                "post",
                "POST",
                "/api/v1/journals",
                content=body,
                # The journal request's trace: the ERP's logs can be joined to ours.
                headers=with_trace(
                    {**_JSON, "Idempotency-Key": posting.key},
                    trace.for_event(posting.request.event_id),
                ),
                deadline=deadline,
            )
        except ErpUnavailable as exc:
            return Unavailable(exc.reason, exc.retry_after_s)
        if response.status_code in (200, 201, 202):
            receipt = _receipt(response.content)
            if receipt.status == "confirmed" and receipt.document_number:
                return Booked(
                    receipt.request_id, receipt.document_number, receipt.fiscal_period,
                    receipt.accepted_at,
                )  # fmt: skip
            return Accepted(receipt.request_id, receipt.accepted_at)
        return _refused(response.status_code, response.reason_phrase, response.content)

    async def confirm(self, journals: Sequence[JournalState]) -> list[Confirmation]:
        ids = [j.erp_request_id for j in journals if j.erp_request_id]
        if not ids:
            return [StillPending() for _ in journals]
        response = await self.client.send(
            "status",
            "POST",
            "/api/v1/journals/status",
            content=_encode(StatusQuery(request_ids=ids)),
            headers=_JSON,
            deadline=time.monotonic() + self._confirm_timeout_s,
        )
        if response.status_code != 200:
            raise ErpUnavailable(f"status query answered HTTP {response.status_code}", 5.0)
        by_id = {s.request_id: s for s in _statuses(response.content).journals}
        out: list[Confirmation] = []
        for journal in journals:
            status = by_id.get(journal.erp_request_id or "")
            if status is None or status.status == "pending" or status.decided_at is None:
                out.append(StillPending())
            elif status.status == "confirmed" and status.document_number:
                out.append(
                    Confirmed(status.document_number, status.fiscal_period, status.decided_at)
                )
            elif status.status == "rejected":
                out.append(
                    Rejected(
                        status.error_code or "rejected", status.message or "", status.decided_at
                    )
                )
            else:
                out.append(StillPending())
        return out

    async def interrupt(self) -> None:
        self.client.interrupt()


def _refused(status: int, phrase: str, content: bytes) -> Refused:
    answer = f"HTTP {status} {phrase}: {content.decode('utf-8', 'replace')}"[:_ANSWER_MAX]
    try:
        problem = _problem(content)
    except msgspec.DecodeError:
        return Refused(f"http_{status}", f"the ERP answered HTTP {status}", answer)
    first = problem.errors[0] if problem.errors else None
    return Refused(
        code=first.code if first else f"http_{status}",
        message="; ".join(e.message for e in problem.errors) or problem.detail or problem.title,
        answer=answer,
        path=None if first is None or first.path is None else f"$.{first.path}",
        value=None if first is None else first.value,
    )
