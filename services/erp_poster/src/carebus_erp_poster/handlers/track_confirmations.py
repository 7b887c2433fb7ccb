"""Turn "posted" into "confirmed" or "rejected" as the ERP decides."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from carebus_contracts.subjects import STREAM_ERP
from carebus_erp_poster.adapters import repository as repo
from carebus_erp_poster.adapters.connector import ErpUnavailable
from carebus_erp_poster.domain.journals import STAGE, JournalState, Status, outputs
from carebus_erp_poster.domain.results import Confirmed, Rejected
from carebus_erp_poster.handlers.common import Parts, erp_reason
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.store import ExceptionRecord

log = logging.getLogger("carebus.erp_poster")

FetchOriginal = Callable[[int], Awaitable[tuple[str, bytes, dict[str, str]] | None]]


class TrackConfirmations:
    """Ask the ERP about pending journals; publish confirmed/rejected; keep the gauges.

    Publish first, then record: a crash in between asks again and republishes the same
    event ids, which JetStream drops. A rejection lands in the exception store with the
    ERP's answer and the original request, and its inbox rows are dropped, so that a re-drive
    after the fix posts the journal again (under a new idempotency key: nothing was booked).
    """

    def __init__(self, parts: Parts, fetch_original: FetchOriginal, *, batch: int) -> None:
        self._parts = parts
        self._metrics = parts.metrics
        self._fetch_original = fetch_original
        self._batch = batch

    async def run_once(self) -> bool:
        """Check one batch of due pending journals; True when more may be due right now."""
        async with self._parts.pool().acquire() as conn:
            pending = await repo.claim_pending(conn, self._batch, self._parts.recheck_after_s)
            decided = await self._decide(pending) if pending else []
            if decided:
                await self._parts.publish([out for state in decided for out in outputs(state)])
                rejected = [s for s in decided if s.status is Status.REJECTED]
                records = [await self._exception_record(s) for s in rejected]
                async with conn.transaction():
                    await repo.save_states(conn, decided, self._parts.recheck_after_s)
                    await repo.forget(conn, self._parts.consumer, [s.journal_id for s in rejected])
                    await exception_store.record_all(conn, records)
            count, oldest = await repo.pending_summary(conn)
        self._metrics.pending.set(count)
        self._metrics.oldest_pending_age.set(oldest)
        return len(pending) == self._batch and bool(decided)

    async def _decide(self, pending: list[JournalState]) -> list[JournalState]:
        try:
            answers = await self._parts.connector.confirm(pending)
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
            reason=erp_reason(state.error_code or "rejected"),
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
