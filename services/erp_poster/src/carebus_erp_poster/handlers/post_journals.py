"""Post a batch of journal requests exactly once in effect.

The inbox row (consumer, event id) and the journal's state are written in the same
transaction as the posting (ledger) or right after the ERP accepted it under the journal's
idempotency key (remote ERP). A redelivery after a crash between that commit and the ack
finds the inbox row, posts nothing and republishes the same events (same ids, so JetStream
drops them as duplicates). ``after_commit`` runs in exactly that window (a test's fault
injection kills the process there); by default it does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from msgspec.structs import replace
from nats.aio.msg import Msg

from carebus_contracts import decode_as
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_erp_poster.adapters import repository as repo
from carebus_erp_poster.domain.journals import JournalState, Posting, Status, outputs
from carebus_erp_poster.domain.results import Accepted, Booked, PostResult, Refused, Unavailable
from carebus_erp_poster.handlers.common import Parts, erp_reason
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry


def parse(msg: Msg) -> Posting | Reject:
    headers = msg.headers or {}
    try:
        request = decode_as(JournalEntryRequested, msg.data, headers.get("Carebus-Schema-Version"))
    except ContractDecodeError as exc:
        return Reject("contract", "undecodable_journal", str(exc), path=exc.path)
    except UnknownContractError as exc:
        return Reject("contract", "unknown_contract", str(exc))
    problems = request.problems()
    if problems:
        # The mapper checks these before publishing; a journal that breaks them is its bug.
        return Reject(
            "mapping",
            "journal_not_postable",
            "; ".join(problems),
            site=request.site,
            event_id=request.event_id,
        )
    return Posting(request, msg.metadata.sequence.stream, msg.subject)


@dataclass
class _Plan:
    """What to do with each decodable message of a batch."""

    to_post: list[Posting]
    known: dict[int, JournalState]  # message index → journal already posted
    leader: dict[int, int]  # message index → index into to_post it shares an outcome with


class PostJournals:
    def __init__(
        self,
        parts: Parts,
        *,
        max_deliveries: int,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._parts = parts
        self.connector = parts.connector
        self._metrics = parts.metrics
        self._max_deliveries = max_deliveries
        self._after_commit = after_commit

    async def handle(self, msgs: Sequence[Msg]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(msgs)
        work: list[tuple[int, Posting]] = []
        for index, msg in enumerate(msgs):
            parsed = parse(msg)
            if isinstance(parsed, Reject):
                outcomes[index] = parsed
            else:
                work.append((index, parsed))
        if work:
            await self._post(msgs, work, outcomes)
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    async def _post(
        self, msgs: Sequence[Msg], work: list[tuple[int, Posting]], outcomes: list[Outcome | None]
    ) -> None:
        connector = self.connector
        async with self._parts.pool().acquire() as conn:
            if connector.atomic_with_inbox:
                async with conn.transaction():
                    plan = await self._plan(conn, work)
                    results = await connector.post(conn, plan.to_post)
                    settled = self._settle(plan, results)
                    await self._record(conn, work, plan, settled)
            else:
                # Remote ERP: no transaction is held open across the HTTP calls.
                plan = await self._plan(conn, work)
                results = await connector.post(conn, plan.to_post)
                settled = self._settle(plan, results)
                async with conn.transaction():
                    await self._record(conn, work, plan, settled)
        self._after_commit()  # a crash here is what the inbox is for
        refused = [out for s in settled if s and s.status is Status.REJECTED for out in outputs(s)]
        if refused:
            await self._parts.publish(refused)
        for index, posting in work:
            outcomes[index] = self._outcome(msgs[index], posting, index, plan, results, settled)

    async def _plan(self, conn: asyncpg.Connection, work: list[tuple[int, Posting]]) -> _Plan:
        handled, current = await repo.lookup(
            conn,
            self._parts.consumer,
            [p.request.event_id for _, p in work],
            [p.journal_id for _, p in work],
        )
        if handled:
            await repo.count_redelivery(conn, self._parts.consumer, list(handled))
        plan = _Plan([], {}, {})
        first_of: dict[str, int] = {}
        for index, posting in work:
            state = handled.get(posting.request.event_id) or current.get(posting.journal_id)
            if state is not None and state.is_posted:
                plan.known[index] = state  # a redelivery, or the same journal re-requested
            elif posting.journal_id in first_of:
                plan.leader[index] = first_of[posting.journal_id]
            else:
                first_of[posting.journal_id] = plan.leader[index] = len(plan.to_post)
                if state is not None:  # rejected before: the next attempt, under a new key
                    posting = replace(posting, attempt=state.attempt)
                plan.to_post.append(posting)
        return plan

    def _settle(self, plan: _Plan, results: Sequence[PostResult]) -> list[JournalState | None]:
        """The state each posted journal is in now (None: the ERP could not take it)."""
        now = dt.datetime.now(dt.UTC)
        settled: list[JournalState | None] = []
        for posting, result in zip(plan.to_post, results, strict=True):
            name = self.connector.name
            if isinstance(result, Booked):
                settled.append(
                    JournalState.for_posting(
                        posting,
                        name,
                        Status.CONFIRMED,
                        erp_request_id=result.erp_request_id,
                        posted_at=result.at,
                        confirmed_at=result.at,
                        document_number=result.document_number,
                        fiscal_period=result.fiscal_period,
                    )
                )
            elif isinstance(result, Accepted):
                settled.append(
                    JournalState.for_posting(
                        posting, name, erp_request_id=result.erp_request_id, posted_at=result.at
                    )
                )
            elif isinstance(result, Refused):
                base = JournalState.for_posting(posting, name)
                settled.append(base.rejected(result.code, result.message, now))
            else:
                settled.append(None)
        return settled

    async def _record(
        self,
        conn: asyncpg.Connection,
        work: list[tuple[int, Posting]],
        plan: _Plan,
        settled: list[JournalState | None],
    ) -> None:
        inbox = []
        for index, posting in work:
            state = plan.known.get(index) or settled[plan.leader[index]]
            if state is not None and state.is_posted:
                inbox.append((posting.request.event_id, posting.journal_id))
        states = [s for s in settled if s is not None]
        await repo.record(conn, self._parts.consumer, inbox, states, self._parts.recheck_after_s)

    def _outcome(
        self,
        msg: Msg,
        posting: Posting,
        index: int,
        plan: _Plan,
        results: Sequence[PostResult],
        settled: list[JournalState | None],
    ) -> Outcome:
        connector = self.connector.name
        if index in plan.known:
            self._metrics.count_journal(connector, "duplicate")
            return Forward(outputs(plan.known[index]))
        result, state = results[plan.leader[index]], settled[plan.leader[index]]
        if isinstance(result, Refused):
            self._metrics.count_journal(connector, "rejected")
            return Reject(
                "erp_rejection",
                erp_reason(result.code),
                f"{result.message} (ERP answer: {result.answer})",
                site=posting.request.site,
                event_id=posting.request.event_id,
                path=result.path,
                offending_value=result.value,
            )
        if isinstance(result, Unavailable) or state is None:
            return self._unavailable(msg, posting, result)
        self._metrics.count_journal(connector, "posted")
        return Forward(outputs(state))

    def _unavailable(self, msg: Msg, posting: Posting, result: PostResult) -> Outcome:
        reason = result.reason if isinstance(result, Unavailable) else "no answer"
        retry_after = result.retry_after_s if isinstance(result, Unavailable) else 5.0
        delivered = msg.metadata.num_delivered or 1
        if delivered >= self._max_deliveries:
            self._metrics.count_journal(self.connector.name, "rejected")
            return Reject(
                "erp_rejection",
                "deliveries_exhausted",
                f"the ERP did not take the journal in {delivered} deliveries; "
                f"its last answer: {reason}",
                site=posting.request.site,
                event_id=posting.request.event_id,
            )
        self._metrics.count_journal(self.connector.name, "retried")
        return Retry(max(1.0, retry_after))
