"""The poster's use cases: post a batch of journal requests exactly once in effect, and turn
"posted" into "confirmed" or "rejected" as the ERP decides.

Exactly once in effect: the inbox row (consumer, event id) and the journal's state are
written in the same transaction as the posting (ledger) or right after the ERP accepted it
under the journal's idempotency key (remote ERP). A redelivery after a crash between that
commit and the ack finds the inbox row, posts nothing and republishes the same events
(same ids, so JetStream drops them as duplicates).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from msgspec.structs import replace
from nats.aio.msg import Msg

from carebus_contracts import decode_as
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_contracts.subjects import STREAM_ERP
from carebus_erp_poster.adapters import repository as repo
from carebus_erp_poster.adapters.connector import ErpConnector, ErpUnavailable
from carebus_erp_poster.domain.journals import STAGE, JournalState, Posting, Status, outputs
from carebus_erp_poster.domain.results import (
    Accepted,
    Booked,
    Confirmed,
    PostResult,
    Refused,
    Rejected,
    Unavailable,
)
from carebus_erp_poster.metrics import PosterMetrics
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry

log = logging.getLogger("carebus.erp_poster")

Publish = Callable[[Sequence[Outgoing]], Awaitable[object]]
FetchOriginal = Callable[[int], Awaitable[tuple[str, bytes, dict[str, str]] | None]]
_REASON_RE = re.compile(r"[^a-z0-9_]+")


def _reason(code: str) -> str:
    """A bounded, label-safe reason from an ERP error code (e.g. erp_unknown_account)."""
    return "erp_" + _REASON_RE.sub("_", code.lower()).strip("_")[:40]


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
        pool: Callable[[], asyncpg.Pool],
        connector: ErpConnector,
        metrics: PosterMetrics,
        publish: Publish,
        *,
        consumer: str,
        max_deliveries: int,
        recheck_after_s: float,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self.connector = connector
        self._metrics = metrics
        self._publish = publish
        self._consumer = consumer
        self._max_deliveries = max_deliveries
        self._recheck_after_s = recheck_after_s
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
        async with self._pool().acquire() as conn:
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
        self._after_commit()  # fault injection: a crash here is what the inbox is for
        refused = [out for s in settled if s and s.status is Status.REJECTED for out in outputs(s)]
        if refused:
            await self._publish(refused)
        for index, posting in work:
            outcomes[index] = self._outcome(msgs[index], posting, index, plan, results, settled)

    async def _plan(self, conn: asyncpg.Connection, work: list[tuple[int, Posting]]) -> _Plan:
        handled, current = await repo.lookup(
            conn,
            self._consumer,
            [p.request.event_id for _, p in work],
            [p.journal_id for _, p in work],
        )
        if handled:
            await repo.count_redelivery(conn, self._consumer, list(handled))
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
        await repo.record(conn, self._consumer, inbox, states, self._recheck_after_s)

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
                _reason(result.code),
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


class TrackConfirmations:
    """Ask the ERP about pending journals; publish confirmed/rejected; keep the gauges.

    Publish first, then record: a crash in between asks again and republishes the same
    event ids, which JetStream drops. A rejection lands in the exception store with the
    ERP's answer and the original request, and its inbox rows are dropped, so that a re-drive
    after the fix posts the journal again (under a new idempotency key: nothing was booked).
    """

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        connector: ErpConnector,
        metrics: PosterMetrics,
        publish: Publish,
        fetch_original: FetchOriginal,
        *,
        consumer: str,
        batch: int,
        recheck_after_s: float,
    ) -> None:
        self._pool = pool
        self._connector = connector
        self._metrics = metrics
        self._publish = publish
        self._fetch_original = fetch_original
        self._consumer = consumer
        self._batch = batch
        self._recheck_after_s = recheck_after_s

    async def run_once(self) -> bool:
        """Check one batch of due pending journals; True when more may be due right now."""
        async with self._pool().acquire() as conn:
            pending = await repo.claim_pending(conn, self._batch, self._recheck_after_s)
            decided = await self._decide(pending) if pending else []
            if decided:
                await self._publish([out for state in decided for out in outputs(state)])
                rejected = [s for s in decided if s.status is Status.REJECTED]
                records = [await self._exception_record(s) for s in rejected]
                async with conn.transaction():
                    await repo.save_states(conn, decided, self._recheck_after_s)
                    await repo.forget(conn, self._consumer, [s.journal_id for s in rejected])
                    await exception_store.record_all(conn, records)
            count, oldest = await repo.pending_summary(conn)
        self._metrics.pending.set(count)
        self._metrics.oldest_pending_age.set(oldest)
        return len(pending) == self._batch and bool(decided)

    async def _decide(self, pending: list[JournalState]) -> list[JournalState]:
        try:
            answers = await self._connector.confirm(pending)
        except ErpUnavailable as exc:
            log.warning("cannot ask the ERP about pending journals now: %s", exc.reason)
            return []
        decided = []
        for state, answer in zip(pending, answers, strict=True):
            if isinstance(answer, Confirmed):
                decided.append(
                    state.confirmed(answer.document_number, answer.fiscal_period, answer.at)
                )
                self._metrics.confirmations.labels("confirmed").inc()
            elif isinstance(answer, Rejected):
                decided.append(state.rejected(answer.code, answer.message, answer.at))
                self._metrics.confirmations.labels("rejected").inc()
        return decided

    async def _exception_record(self, state: JournalState) -> ExceptionRecord:
        original = await self._fetch_original(state.stream_seq)
        subject, raw, headers = original if original else (state.subject, None, {})
        return ExceptionRecord(
            # One record per rejected attempt; a re-drive that is rejected again adds one.
            dedupe_key=f"erp-rejected:{state.journal_id}:{state.attempt}",
            stage=STAGE,
            category="erp_rejection",
            reason=_reason(state.error_code or "rejected"),
            message=f"the ERP rejected journal {state.journal_id} after accepting it: "
            f"{state.error_message}",
            source="erp",
            site=state.site,
            event_id=state.event_id,
            stream=STREAM_ERP,
            stream_seq=state.stream_seq,
            subject=subject,
            content_type="application/json",
            raw=raw,
            headers=headers,
        )
