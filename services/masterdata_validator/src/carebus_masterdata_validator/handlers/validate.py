"""In-flight validation of a batch of scheduling or billing events.

For each message, in stream order: decode it, resolve its references in the in-memory view,
and either forward its ``Validated…`` event, or park it (record the exception, publish the
exception event, ack): nothing is terminated for a master-data problem, because the
quarantine releases it once the master data is fixed. An event of an entity that already has
parked events is parked behind them, so an entity's events leave in their original order.

A batch whose events all resolved costs one query (which of its entities are parked); a batch
with an event to park goes straight to one transaction under the quarantine lock, which reads
that itself, and looks up again what failed (the view, the claim index): what arrived since
the first lookup is not parked, and what arrives later is found by its release scan, which
takes the lock exclusive (docs/decisions/021).

Remittance events are booked to their claim's site (``domain/claim_sites.py``): the claims a
batch names are looked up in the claim index in one query (a charge earlier in the same batch
counts), one whose claim is unknown is parked for ``unknown_claim``, and the charges a batch
forwards are added to the index, which wakes the quarantine for the claims they made known
(docs/decisions/021).
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
from carebus_masterdata_validator.adapters import claims_repo, exception_records
from carebus_masterdata_validator.adapters import quarantine_repo as quarantine
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.quarantine_repo import FailureRow, NewParked
from carebus_masterdata_validator.domain.claim_sites import (
    UNKNOWN_CLAIM,
    Booking,
    ClaimCharge,
    ClaimSite,
    book,
    charge_of,
    claim_key,
    claim_of,
    is_remittance,
)
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
    base: Validation  # the references resolved in the view
    booking: Booking | Failure | None = None  # a remittance event's site, or why it waits

    @property
    def ok(self) -> bool:
        return self.base.ok and not isinstance(self.booking, Failure)

    @property
    def failures(self) -> list[Failure]:
        if isinstance(self.booking, Failure):
            return [*self.base.failures, self.booking]
        return self.base.failures

    def charge(self) -> ClaimCharge | None:
        """The claim-index entry of this event, when it is a charge that resolved."""
        if not self.base.ok or self.base.enrichment is None:
            return None
        return charge_of(self.event, self.base.enrichment)


def claims_of_batch(items: Sequence[_Item]) -> dict[str, ClaimSite]:
    """The claims the batch's own resolved charges make known (the first charge wins)."""
    found: dict[str, ClaimSite] = {}
    for item in items:
        charge = item.charge()
        if charge is not None and charge.claim_id not in found:
            found[charge.claim_id] = ClaimSite(charge.site, charge.location_id)
    return found


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
        claims_known: Callable[[set[str]], None] = lambda keys: None,
    ) -> None:
        self._view = view
        self._ready = view_ready
        self._pool = pool
        self._metrics = metrics
        self._view_wait_s = view_wait_s
        self._parked = parked  # told whenever events were parked (gauges)
        self._claims_known = claims_known  # told the wait keys of claims newly indexed

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
            await self._book(conn, items)
            if all(item.ok for item in items):
                entities = sorted({item.entity for item in items})
                parked = await quarantine.parked_entities(conn, entities) if entities else set()
                if not parked:
                    for item in items:  # the common case: everything resolved, nothing waiting
                        outcomes[item.index] = self._forward(item, now)
                    await self._index_charges(conn, items)
                    return outcomes
            # Something must be parked. What is parked is read again under the quarantine
            # lock there, so when an event failed, reading it here first would be wasted.
            forwarded = await self._park_what_must_wait(stage, conn, items, outcomes, now)
            await self._index_charges(conn, forwarded)
        return outcomes

    async def _book(
        self, conn: asyncpg.Connection, items: list[_Item], *, only_waiting: bool = False
    ) -> None:
        """Book the batch's remittance events to their claims' sites (``only_waiting``: again,
        under the quarantine lock, those that found no claim before)."""
        todo = [
            item
            for item in items
            if is_remittance(item.event)
            if not only_waiting
            or (isinstance(item.booking, Failure) and item.booking.reason == UNKNOWN_CLAIM)
        ]
        if not todo:
            return
        # The index first: a claim indexed before keeps its site; the batch's own charges
        # count for the claims they are the first of.
        wanted = {claim for item in todo if (claim := claim_of(item.event)) is not None}
        claims = await claims_repo.lookup(conn, wanted)
        for claim, found in claims_of_batch(items).items():
            claims.setdefault(claim, found)
        for item in todo:
            item.booking = book(self._view, item.event, claims)

    async def _index_charges(self, conn: asyncpg.Connection, items: Sequence[_Item]) -> None:
        charges = [charge for item in items if (charge := item.charge()) is not None]
        if charges:
            known = await claims_repo.index(conn, charges)
            if known:
                self._claims_known({claim_key(claim_id) for claim_id in known})

    def _forward(self, item: _Item, now: datetime) -> Forward:
        assert item.base.enrichment is not None
        booking = item.booking if isinstance(item.booking, Booking) else None
        return Forward(
            [outgoing_for(validated_event(item.event, item.base.enrichment, now, booking))]
        )

    async def _park_what_must_wait(
        self,
        stage: str,
        conn: asyncpg.Connection,
        items: list[_Item],
        outcomes: list[Outcome],
        now: datetime,
    ) -> list[_Item]:
        """Park what must wait, forward the rest; returns the items forwarded."""
        rows: list[NewParked] = []
        records: dict[int, list[ExceptionRecord]] = {}
        forwarded: list[_Item] = []
        async with conn.transaction():
            await quarantine.lock_shared(conn)
            # Re-check under the lock: a release may have emptied a queue meanwhile, and the
            # master data or claim an event misses may have arrived since its lookup, its
            # release scan already run (a scan after this point waits for our commit).
            parked = await quarantine.parked_entities(conn, sorted({i.entity for i in items}))
            for item in items:
                if not item.base.ok:
                    item.base = validate(self._view, item.event)
            await self._book(conn, items, only_waiting=True)
            for item in items:
                failures, event, msg = item.failures, item.event, item.msg
                if item.entity not in parked and item.ok:
                    outcomes[item.index] = self._forward(item, now)
                    forwarded.append(item)
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
                        failures=failure_rows(failures),
                        missing_keys=wait_keys(failures),
                    )
                )
                parked.add(item.entity)
                first = failures[0].reason if failures else QUEUED_BEHIND
                self._metrics.quarantined.labels(first).inc()
                for failure in failures:
                    self._metrics.lookup_failures.labels(failure.reason, event.site).inc()
                records[item.index] = exception_records_for(
                    stage,
                    meta.stream,
                    meta.sequence.stream,
                    msg.subject,
                    headers,
                    msg.data,
                    event,
                    failures,
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
        return forwarded
