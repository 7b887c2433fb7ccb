"""Use case: re-drive an input an adapter kept in the exception store, as stored or corrected.
Also the outcome vocabulary and response body every re-drive and discard answers with.

The kept raw input (or a corrected one a person supplies) goes down the path it first took,
chosen by the record's ``source``. Accepted: its events are published and the record is
resolved ``redriven``. Rejected again: the record stays open (a corrected input that fails
is kept as a record of its own, with its reason). Either way the attempt is appended to the
record's history and to the audit log. Messages that reached a stream are re-driven by
``carebus_shared.exceptions.actions`` instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import asyncpg

from carebus_shared import audit
from carebus_shared.exceptions import store

# A bigserial id: anything past it cannot name a record (and would overflow the query).
MAX_RECORD_ID: Final = 2**63 - 1


class RedriveOutcome(StrEnum):
    REDRIVEN = "redriven"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    NOT_OPEN = "not_open"
    NOT_REDRIVABLE_HERE = "not_redrivable_here"
    DISCARDED = "discarded"
    # A dependency (JetStream, PostgreSQL, the adapter that kept the input) failed: retry.
    UNAVAILABLE = "unavailable"


ACTION_HEADER: Final = "X-Carebus-Action"  # 'bulk_redrive' when one of a bulk re-drive


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """What one path made of a kept input this time."""

    accepted: bool
    message: str
    event_ids: tuple[str, ...] = ()
    reason: str | None = None
    report: Mapping[str, Any] = field(default_factory=dict)


# (raw input, the headers kept with it) -> what the path made of it.
Reprocess = Callable[[bytes, Mapping[str, str]], Awaitable[Reprocessed]]


@dataclass(frozen=True, slots=True)
class RedriveResult:
    outcome: RedriveOutcome
    record_id: int
    message: str
    source: str | None = None
    event_ids: tuple[str, ...] = ()
    reason: str | None = None
    report: Mapping[str, Any] = field(default_factory=dict)


class RedriveInputs:
    """Re-drive records of ``stage`` through ``paths``, one per record ``source``."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        stage: str,
        paths: Mapping[str, Reprocess],
    ) -> None:
        self._pool = pool
        self.stage = stage
        self._paths = dict(paths)

    async def redrive(
        self, record_id: int, corrected: bytes | None, actor: str, action: str = "redrive"
    ) -> RedriveResult:
        result = await self._redrive(record_id, corrected, actor, action)
        await audit_redrive(self._pool(), actor, action, result, corrected)
        return result

    async def _redrive(
        self, record_id: int, corrected: bytes | None, actor: str, action: str
    ) -> RedriveResult:
        if not 0 < record_id <= MAX_RECORD_ID:
            return _not_found(record_id)
        async with self._pool().acquire() as conn:
            row = await store.get(conn, record_id)
        if row is None:
            return _not_found(record_id)
        refused = self._refusal(record_id, row)
        if refused is not None:
            return refused
        source = str(row["source"])
        raw: bytes = corrected or bytes(row["raw"])
        done = await self._paths[source](raw, store.decode_headers(row["headers"]))
        if not done.accepted:
            message = done.message or "rejected again"
            async with self._pool().acquire() as conn:
                await store.append_action(
                    conn, record_id, actor, action, RedriveOutcome.REJECTED,
                    f"{done.reason or 'rejected'}: {message}"[:1000], corrected,
                )  # fmt: skip
            return RedriveResult(
                RedriveOutcome.REJECTED, record_id, message,
                source, done.event_ids, done.reason, done.report,
            )  # fmt: skip
        note = f"{'corrected' if corrected else 'stored'} input accepted: {done.message}"
        async with self._pool().acquire() as conn:
            resolved = await store.resolve(
                conn, record_id, "redriven", actor, note[:1000], action=action, sent=corrected
            )
        if not resolved:  # another re-drive or a discard got there first
            return RedriveResult(
                RedriveOutcome.NOT_OPEN, record_id, f"record {record_id} was resolved meanwhile"
            )
        return RedriveResult(
            RedriveOutcome.REDRIVEN, record_id, note, source, done.event_ids, None, done.report
        )

    def _refusal(self, record_id: int, row: Mapping[str, Any]) -> RedriveResult | None:
        if row["status"] != "open":
            return RedriveResult(
                RedriveOutcome.NOT_OPEN, record_id, f"record {record_id} is {row['status']}"
            )
        if row["stage"] != self.stage or not row["raw"] or row["source"] not in self._paths:
            return RedriveResult(
                RedriveOutcome.NOT_REDRIVABLE_HERE,
                record_id,
                f"record {record_id} is not an input kept by {self.stage}; "
                "stream messages are re-driven with `carebus exceptions redrive`",
            )
        return None


async def audit_redrive(
    db: asyncpg.Pool, actor: str, action: str, result: RedriveResult, corrected: bytes | None
) -> None:
    """One audit entry per re-drive, whatever came of it (the corrected body's size only)."""
    await audit.record(
        db, actor=actor, action=action, target_kind="exception_record",
        target_id=result.record_id, outcome=str(result.outcome),
        detail={
            "corrected_bytes": None if corrected is None else len(corrected),
            "reason": result.reason,
        },
    )  # fmt: skip


def _not_found(record_id: int) -> RedriveResult:
    return RedriveResult(RedriveOutcome.NOT_FOUND, record_id, f"no exception record {record_id}")


def result_body(result: RedriveResult) -> dict[str, Any]:
    """The response body of every re-drive and discard, whichever stage the record is of."""
    return {
        "record_id": result.record_id,
        "outcome": str(result.outcome),
        "message": result.message,
        "source": result.source,
        "event_ids": list(result.event_ids),
        "reason": result.reason,
        "report": dict(result.report),
    }
