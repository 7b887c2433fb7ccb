"""Use cases of the exceptions API: re-drive (any stage), discard, bulk re-drive by filter.

- A stream message (the record holds its subject and bytes) is republished to its subject,
  as stored or corrected (a correction is checked against its contract first), with a fresh
  ``Nats-Msg-Id`` so JetStream takes it again. The record is locked meanwhile: two people
  re-driving it at once publish it once.
- An input an adapter kept is forwarded to that adapter's re-drive route (only it can
  re-process what it kept), whose answer is relayed.
- Every action, whatever came of it, is appended to the record's history, and to the audit
  log (a forwarded one by the adapter that re-drove it); so is every view of a payload.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
from nats.js import JetStreamContext

from carebus_shared import audit, crypto
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.exceptions import query, store
from carebus_shared.exceptions.adapter_client import AdapterRedriveClient
from carebus_shared.exceptions.correction import check_correction
from carebus_shared.exceptions.redrive import (
    MAX_RECORD_ID,
    RedriveOutcome,
    RedriveResult,
    audit_redrive,
)
from carebus_shared.jetstream.publish import MSG_ID, Outgoing, publish_confirmed

log = logging.getLogger(__name__)

DEFAULT_BULK_MAX: Final = 100
MAX_REASON_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class BulkResult:
    dry_run: bool
    matched: int  # open records matching the filter, in all
    ids: tuple[int, ...]  # those (at most ``limit``) this call re-drove, or would
    results: tuple[RedriveResult, ...] = ()
    outcomes: Mapping[str, int] = field(default_factory=dict)


def redrive_msg_id(record_id: int, headers: Mapping[str, str], corrected: bytes | None) -> str:
    """A fresh id for the re-driven copy (the original's is inside JetStream's duplicate
    window or gone). The same record re-driven with the same body gets the same id, so a
    retry after a lost answer is dropped as a duplicate, not delivered twice."""
    original = headers.get(MSG_ID, "")
    if corrected is None:
        return f"redrive-{record_id}-{original}"
    digest = hashlib.sha256(corrected).hexdigest()[:16]
    return f"redrive-{record_id}-{digest}-{original}"


class ExceptionActions:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        js: Callable[[], JetStreamContext],
        adapters: AdapterRedriveClient | None = None,
        bulk_max: int = DEFAULT_BULK_MAX,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.pool = pool
        self._js = js
        self._adapters = adapters
        self.bulk_max = bulk_max
        self._publish_timeout_s = publish_timeout_s

    async def view(
        self, record_id: int, include_payload: bool, actor: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The record and its history; None when there is no such record. A view with the
        payload (patient data) is audited."""
        row, history = None, []
        if 0 < record_id <= MAX_RECORD_ID:
            async with self.pool().acquire() as conn:
                row = await store.get(conn, record_id)
                history = await store.history(conn, record_id) if row else []
        if include_payload:
            await audit.record(
                self.pool(), actor=actor, action="phi_view", target_kind="exception_record",
                target_id=record_id, outcome="shown" if row else "not_found",
                detail={"include": "payload"},
            )  # fmt: skip
        return None if row is None else (row, history)

    async def redrive(
        self, record_id: int, corrected: bytes | None, actor: str, action: str = "redrive"
    ) -> RedriveResult:
        result, forwarded = await self._redrive(record_id, corrected, actor, action)
        if not forwarded:  # the adapter that re-drove a forwarded one audited it
            await audit_redrive(self.pool(), actor, action, result, corrected)
        return result

    async def _redrive(
        self, record_id: int, corrected: bytes | None, actor: str, action: str
    ) -> tuple[RedriveResult, bool]:
        """What came of it, and whether an adapter did it (forwarded)."""
        if not 0 < record_id <= MAX_RECORD_ID:
            return _not_found(record_id), False
        async with self.pool().acquire() as conn:
            row = await store.get(conn, record_id)
        if row is None:
            return _not_found(record_id), False
        if row["status"] != "open":
            return _not_open(record_id, row["status"]), False
        if row["subject"] and row["raw"] is not None:
            return await self._republish(record_id, corrected, actor, action), False
        stage = str(row["stage"])
        if row["raw"] and self._adapters is not None and self._adapters.serves(stage):
            return await self._adapters.redrive(stage, record_id, corrected, actor, action), True
        return RedriveResult(
            RedriveOutcome.NOT_REDRIVABLE_HERE,
            record_id,
            f"record {record_id} holds no stream message, and no adapter URL is configured "
            f"for its stage {stage}",
            str(row["source"]),
        ), False

    async def _republish(
        self, record_id: int, corrected: bytes | None, actor: str, action: str
    ) -> RedriveResult:
        async with self.pool().acquire() as conn, conn.transaction():
            # Held until the publish is confirmed and the record resolved.
            row = await conn.fetchrow(
                "SELECT status, subject, raw, headers, source "
                "FROM carebus_exceptions.exception_record WHERE id = $1 FOR UPDATE",
                record_id,
            )
            if row is None:
                return _not_found(record_id)
            if row["status"] != "open":
                return _not_open(record_id, row["status"])
            subject, source = str(row["subject"]), str(row["source"])
            headers = store.decode_headers(row["headers"])
            if corrected is not None:
                refused = check_correction(subject, headers, corrected)
                if refused is not None:
                    await store.append_action(
                        conn, record_id, actor, action, RedriveOutcome.REJECTED,
                        f"{refused.reason}: {refused.message}", corrected,
                    )  # fmt: skip
                    return RedriveResult(
                        RedriveOutcome.REJECTED, record_id, refused.message, source,
                        reason=refused.reason, report={"path": refused.path, "rule": refused.rule},
                    )  # fmt: skip
            msg_id = redrive_msg_id(record_id, headers, corrected)
            payload = corrected if corrected is not None else crypto.unseal(row["raw"]) or b""
            kept = {name: value for name, value in headers.items() if name != MSG_ID}
            out = Outgoing(subject, payload, msg_id, kept)
            [ack] = await publish_confirmed(self._js(), [out], self._publish_timeout_s)
            how = "corrected" if corrected is not None else "stored"
            copy = " (a duplicate of an earlier re-drive)" if ack.duplicate else ""
            note = f"{how} message republished to {subject} as {ack.stream}:{ack.seq}{copy}"
            await store.resolve(
                conn, record_id, "redriven", actor, note, action=action, sent=corrected
            )
        log.info("exception record re-driven", extra={"record_id": record_id, "action": action})
        return RedriveResult(
            RedriveOutcome.REDRIVEN, record_id, note, source, (msg_id,),
            report={"stream": ack.stream, "seq": ack.seq, "subject": subject},
        )  # fmt: skip

    async def discard(self, record_id: int, reason: str, actor: str) -> RedriveResult:
        """Close the record without re-driving it; ``reason`` is mandatory (kept in history)."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a discard needs a reason")
        if not 0 < record_id <= MAX_RECORD_ID:
            return _not_found(record_id)
        result = await self._discard(record_id, reason, actor)
        await audit.record(
            self.pool(), actor=actor, action="discard", target_kind="exception_record",
            target_id=record_id, outcome=str(result.outcome),
            detail={"reason_chars": len(reason)},
        )  # fmt: skip
        return result

    async def _discard(self, record_id: int, reason: str, actor: str) -> RedriveResult:
        async with self.pool().acquire() as conn:
            done = await store.resolve(
                conn, record_id, "discarded", actor, reason[:MAX_REASON_CHARS]
            )
            if done:
                return RedriveResult(RedriveOutcome.DISCARDED, record_id, "discarded")
            row = await store.get(conn, record_id)
        if row is None:
            return _not_found(record_id)
        return _not_open(record_id, row["status"])

    async def bulk_redrive(
        self, flt: query.ExceptionFilter, dry_run: bool, limit: int, actor: str
    ) -> BulkResult:
        """Re-drive (or, dry, only name) the oldest ``limit`` open records matching ``flt``."""
        if not 1 <= limit <= self.bulk_max:
            raise query.InvalidQuery("limit", f"must be between 1 and {self.bulk_max}")
        if flt.status not in (None, "open"):
            raise query.InvalidQuery("status", "a bulk re-drive takes open records only")
        async with self.pool().acquire() as conn:
            matched, ids = await query.open_ids(conn, flt, limit)
        if dry_run:
            return BulkResult(True, matched, tuple(ids))
        results = [await self._redrive_one_of_many(record_id, actor) for record_id in ids]
        outcomes = Counter(str(result.outcome) for result in results)
        log.info(
            "bulk re-drive",
            extra={"matched": matched, "attempted": len(ids), "outcomes": dict(outcomes)},
        )
        return BulkResult(False, matched, tuple(ids), tuple(results), dict(outcomes))

    async def _redrive_one_of_many(self, record_id: int, actor: str) -> RedriveResult:
        try:
            return await self.redrive(record_id, None, actor, "bulk_redrive")
        except DEPENDENCY_ERRORS as exc:  # this one is left open; the others still go
            log.warning(
                "bulk re-drive: one record not re-driven, a dependency failed",
                extra={"record_id": record_id, "error": type(exc).__name__},
            )
            return RedriveResult(
                RedriveOutcome.UNAVAILABLE, record_id, "JetStream or PostgreSQL failed; retry"
            )


def _not_found(record_id: int) -> RedriveResult:
    return RedriveResult(RedriveOutcome.NOT_FOUND, record_id, f"no exception record {record_id}")


def _not_open(record_id: int, status: Any) -> RedriveResult:
    return RedriveResult(RedriveOutcome.NOT_OPEN, record_id, f"record {record_id} is {status}")
