"""In-flight validation of a batch of scheduling or billing events.

For each message, in stream order: decode it, resolve its references in the in-memory view,
and either forward its ``Validated…`` event, or park it (record the exception, publish the
exception event, ack): nothing is terminated for a master-data problem, because the
quarantine releases it once the master data is fixed. An event of an entity that already has
parked events is parked behind them, so an entity's events leave in their original order.

A batch whose events all resolved costs one query (which of its entities are parked); a batch
with an event to park goes straight to one transaction under the quarantine lock, which reads
that itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from nats.aio.msg import Msg

from carebus_contracts import (
    ContractDecodeError,
    UnknownContractError,
    decode_message,
)
from carebus_contracts.envelope import Event
from carebus_masterdata_validator.adapters import exception_records
from carebus_masterdata_validator.adapters import quarantine_repo as quarantine
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.quarantine_repo import FailureRow, NewParked
from carebus_masterdata_validator.domain.validated import VALIDATED_FOR, validated_event
from carebus_masterdata_validator.domain.validation import Failure, Validation, validate
from carebus_masterdata_validator.domain.view import MasterDataView
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing, outgoing_for
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry
from carebus_shared.replay.headers import origin_key

log = logging.getLogger("carebus.masterdata.validate")

QUEUED_BEHIND = "queued_behind"
_NOTHING = Forward()


def entity_of(stream: str, event: Event) -> str:
    return f"{stream}:{event.entity_key}"


def exception_records_for(
    stage: str,
    stream: str,
    seq: int,
    subject: str,
    headers: dict[str, str],
    raw: bytes,
    event: Event,
    failures: Sequence[Failure],
) -> list[ExceptionRecord]:
    note = " Parked in quarantine: released by itself when the master data is fixed."
    # A replayed copy of a parked event is the event already recorded (docs/decisions/015).
    origin = origin_key(stream, seq, headers)
    return [
        ExceptionRecord(
            dedupe_key=f"{origin}:{f.reason}:{f.path}",
            stage=stage,
            category="masterdata",
            reason=f.reason,
            message=f.message + note,
            source="jetstream",
            site=event.site,
            event_id=event.event_id,
            stream=stream,
            stream_seq=seq,
            subject=subject,
            content_type="application/json",
            raw=raw,
            headers=headers,
            path=f.path,
            offending_value=f.offending_value,
        )
        for f in failures
    ]


def failure_rows(failures: Sequence[Failure]) -> tuple[FailureRow, ...]:
    return tuple(FailureRow(f.reason, f.path, f.offending_value, f.message) for f in failures)


def wait_keys(failures: Sequence[Failure]) -> tuple[str, ...]:
    return tuple(sorted({key for f in failures for key in f.wait_keys}))


@dataclass(slots=True)
class _Item:
    index: int
    msg: Msg
    event: Event
    entity: str
    result: Validation


class Validator:
    def __init__(
        self,
        view: MasterDataView,
        view_ready: asyncio.Event,
        pool: Callable[[], asyncpg.Pool],
        metrics: ValidatorMetrics,
        *,
        view_wait_s: float = 10.0,
        parked: Callable[[], None] = lambda: None,
    ) -> None:
        self._view = view
        self._ready = view_ready
        self._pool = pool
        self._metrics = metrics
        self._view_wait_s = view_wait_s
        self._parked = parked  # told whenever events were parked (gauges)

    async def handle(self, stage: str, msgs: Sequence[Msg]) -> list[Outcome]:
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(self._view_wait_s):
                    await self._ready.wait()
            except TimeoutError:
                log.warning("master-data view not loaded yet; batch will be retried")
                return [Retry(2.0) for _ in msgs]

        if not msgs:
            return []
        # A batch comes from one consumer, so from one stream: parse the metadata of only the
        # first message for it, not of every message.
        stream = msgs[0].metadata.stream
        # Placeholders (every one is replaced below); Forward is immutable, so one can be shared.
        outcomes: list[Outcome] = [_NOTHING] * len(msgs)
        items: list[_Item] = []
        for i, msg in enumerate(msgs):
            try:
                event = decode_message(msg.subject, msg.data, msg.headers)
            except ContractDecodeError as exc:
                outcomes[i] = Reject("contract", "undecodable", str(exc), path=exc.path)
                continue
            except UnknownContractError as exc:
                outcomes[i] = Reject("contract", "unknown_contract", str(exc))
                continue
            if type(event) not in VALIDATED_FOR:
                outcomes[i] = Reject(
                    "contract",
                    "not_validated",
                    f"{event.event_type} is not a scheduling or billing event",
                    site=event.site,
                    event_id=event.event_id,
                )
                continue
            items.append(
                _Item(i, msg, event, entity_of(stream, event), validate(self._view, event))
            )

        now = datetime.now(UTC)
        async with self._pool().acquire() as conn:
            if all(item.result.ok for item in items):
                entities = sorted({item.entity for item in items})
                parked = await quarantine.parked_entities(conn, entities) if entities else set()
                if not parked:
                    for item in items:  # the common case: everything resolved, nothing waiting
                        outcomes[item.index] = self._forward(item, now)
                    return outcomes
            # Something must be parked. What is parked is read again under the quarantine
            # lock there, so when an event failed, reading it here first would be wasted.
            await self._park_what_must_wait(stage, conn, items, outcomes, now)
        return outcomes

    def _forward(self, item: _Item, now: datetime) -> Forward:
        assert item.result.enrichment is not None
        return Forward([outgoing_for(validated_event(item.event, item.result.enrichment, now))])

    async def _park_what_must_wait(
        self,
        stage: str,
        conn: asyncpg.Connection,
        items: list[_Item],
        outcomes: list[Outcome],
        now: datetime,
    ) -> None:
        rows: list[NewParked] = []
        records: dict[int, list[ExceptionRecord]] = {}
        async with conn.transaction():
            await quarantine.lock_shared(conn)
            # Re-read under the lock: a release may have emptied a queue meanwhile.
            parked = await quarantine.parked_entities(conn, sorted({i.entity for i in items}))
            for item in items:
                result, event, msg = item.result, item.event, item.msg
                if item.entity not in parked and result.ok:
                    outcomes[item.index] = self._forward(item, now)
                    continue
                meta = msg.metadata
                headers = dict(msg.headers or {})
                rows.append(
                    NewParked(
                        event_id=event.event_id,
                        entity=item.entity,
                        stream=meta.stream,
                        stream_seq=meta.sequence.stream,
                        subject=msg.subject,
                        headers=headers,
                        raw=msg.data,
                        event_type=event.event_type,
                        site=event.site,
                        failures=failure_rows(result.failures),
                        missing_keys=wait_keys(result.failures),
                    )
                )
                parked.add(item.entity)
                first = result.failures[0].reason if result.failures else QUEUED_BEHIND
                self._metrics.quarantined.labels(first).inc()
                for failure in result.failures:
                    self._metrics.lookup_failures.labels(failure.reason, event.site).inc()
                records[item.index] = exception_records_for(
                    stage,
                    meta.stream,
                    meta.sequence.stream,
                    msg.subject,
                    headers,
                    msg.data,
                    event,
                    result.failures,
                )
            await quarantine.park(conn, rows)
            flat = [(index, rec) for index, recs in records.items() for rec in recs]
            events = await exception_records.announce(conn, [rec for _, rec in flat])
            announced: dict[int, list[Outgoing]] = {index: [] for index in records}
            for (index, _), announcement in zip(flat, events, strict=True):
                if announcement is not None:
                    announced[index].append(announcement)
        for index, outgoing in announced.items():
            outcomes[index] = Forward(outgoing)  # exception events; the input is acked after
        self._parked()
