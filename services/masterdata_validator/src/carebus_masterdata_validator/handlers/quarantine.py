"""The quarantine: releasing parked events by themselves, and by hand.

When the view takes a master-data change it reports the wait keys the change touches; every
entity with a parked event waiting for one of them is re-validated, head first, in original
order: each event that now resolves is published as validated, and the first that still does
not stops its entity's queue (its failures are updated). All of it happens under the
exclusive quarantine lock, publish before delete, so a crash re-publishes (into JetStream's
duplicate window) rather than loses. The scan for the entities waiting takes that lock too: a
batch parking meanwhile looked up before the change, and its row must be seen. A person may
release (re-validate now) or discard.

Remittance events waiting for their claim (``unknown_claim``) wait on ``claim:<id>``: the
validation of the claim's first charge reports that key, and a charge released here is
indexed and reports it too (docs/decisions/021).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from nats.js import JetStreamContext

from carebus_contracts import ContractDecodeError, UnknownContractError, decode_message
from carebus_contracts.envelope import Event
from carebus_contracts.subjects import STREAM_BILLING, STREAM_SCHEDULING
from carebus_masterdata_validator.adapters import changes_repo, claims_repo, exception_records
from carebus_masterdata_validator.adapters import quarantine_repo as quarantine
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.quarantine_repo import FailureRow, Parked
from carebus_masterdata_validator.domain.claim_sites import (
    Booking,
    ClaimCharge,
    ClaimSite,
    book,
    charge_of,
    claim_key,
    claim_of,
)
from carebus_masterdata_validator.domain.problems import Problem
from carebus_masterdata_validator.domain.validated import STAGE, validated_event
from carebus_masterdata_validator.domain.validation import Failure, validate
from carebus_masterdata_validator.domain.view import MasterDataView
from carebus_masterdata_validator.handlers.validate import (
    exception_records_for,
    failure_rows,
    wait_keys,
)
from carebus_shared import audit
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing, outgoing_for, publish_confirmed
from carebus_shared.jetstream.topology import VALIDATOR_BILLING, VALIDATOR_SCHEDULING

log = logging.getLogger("carebus.masterdata.quarantine")

AUTO = "auto"
MANUAL = "manual"
STAGE_BY_STREAM = {STREAM_SCHEDULING: VALIDATOR_SCHEDULING, STREAM_BILLING: VALIDATOR_BILLING}


@dataclass
class ReleaseReport:
    entities: int = 0
    released: list[int] = field(default_factory=list)  # parked ids, in publish order
    still_parked: dict[int, tuple[FailureRow, ...]] = field(default_factory=dict)


class Quarantine:
    def __init__(
        self,
        view: MasterDataView,
        pool: Callable[[], asyncpg.Pool],
        js: Callable[[], JetStreamContext],
        metrics: ValidatorMetrics,
        *,
        batch_entities: int = 200,
        sweep_s: float = 300.0,
        gauge_refresh_s: float = 5.0,
    ) -> None:
        self._view = view
        self._pool = pool
        self._js = js
        self._metrics = metrics
        self._batch = batch_entities
        self._sweep_s = sweep_s
        self._gauge_refresh_s = gauge_refresh_s
        self._pending: set[str] = set()
        self._sweep = False
        self._wake = asyncio.Event()
        self._gauges_stale = asyncio.Event()

    # -- triggers ------------------------------------------------------------------------------
    def changed(self, keys: set[str]) -> None:
        """Master data under these wait keys changed (from the view watcher)."""
        self._pending |= keys
        self._wake.set()

    def sweep(self) -> None:
        """Re-try every parked entity (after the view's initial load, and periodically)."""
        self._sweep = True
        self._wake.set()

    def parked(self) -> None:
        self._gauges_stale.set()

    # -- background loops ----------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_s
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                self._sweep = True
            self._wake.clear()
            keys, self._pending = self._pending, set()
            sweep, self._sweep = self._sweep, False
            if sweep:
                next_sweep = loop.time() + self._sweep_s
            try:
                await self.release_waiting(keys, sweep=sweep)
            except (OSError, asyncpg.PostgresError, RuntimeError, TimeoutError) as exc:
                log.warning("quarantine release failed, will retry: %s", exc)
                self._pending |= keys
                self._sweep = self._sweep or sweep
                await asyncio.sleep(2.0)
                self._wake.set()

    async def release_waiting(self, keys: set[str], *, sweep: bool = False) -> None:
        """Re-validate every entity with an event waiting for one of ``keys`` (``sweep``:
        every parked entity), what the release loop does on each wake."""
        if not keys and not sweep:
            return
        done: set[str] = set()
        while True:  # bounded: each round takes entities not yet tried in this run
            async with self._pool().acquire() as conn, conn.transaction():
                # Exclusive: a batch parking now checked before this change; wait for its row.
                await quarantine.lock_exclusive(conn)
                if sweep:
                    candidates = await quarantine.all_entities(conn, self._batch + len(done))
                else:
                    candidates = await quarantine.entities_waiting_for(
                        conn, sorted(keys), self._batch + len(done)
                    )
            batch = [e for e in candidates if e not in done][: self._batch]
            if not batch:
                return
            await self.release_entities(batch, AUTO)
            done.update(batch)

    async def refresh_gauges(self) -> None:
        async with self._pool().acquire() as conn:
            size, oldest = await quarantine.stats(conn)
        self._metrics.set_quarantine(size, oldest.timestamp() if oldest else None)

    async def run_gauges(self) -> None:
        while True:
            try:
                await self.refresh_gauges()
            except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
                log.warning("quarantine gauges not refreshed: %s", exc)
            try:
                async with asyncio.timeout(self._gauge_refresh_s):
                    await self._gauges_stale.wait()
            except TimeoutError:
                pass
            self._gauges_stale.clear()

    # -- reading, for people (the failures quote the offending values: audited views) ----------
    async def page(
        self,
        *,
        entity_key: str | None,
        reason: str | None,
        site: str | None,
        after_id: int | None,
        limit: int,
        actor: str,
    ) -> list[Parked]:
        async with self._pool().acquire() as conn:
            rows = await quarantine.list_page(
                conn, entity_key=entity_key, reason=reason, site=site, after_id=after_id,
                limit=limit,
            )  # fmt: skip
            if rows:
                await audit.record(
                    conn, actor=actor, action="phi_view", target_kind="parked_events",
                    target_id=f"{rows[0].id}..{rows[-1].id}", outcome="shown",
                    detail={"count": len(rows), "ids": ",".join(str(r.id) for r in rows)},
                )  # fmt: skip
        return rows

    async def get(self, parked_id: int, actor: str) -> Parked:
        async with self._pool().acquire() as conn:
            row = await quarantine.get(conn, parked_id)
            await audit.record(
                conn, actor=actor, action="phi_view", target_kind="parked_event",
                target_id=parked_id, outcome="shown" if row else "not_found",
            )  # fmt: skip
        if row is None:
            raise Problem(404, "Not found", f"no parked event {parked_id}")
        return row

    # -- releasing -----------------------------------------------------------------------------
    async def release_by_hand(self, entity_key: str | None, actor: str) -> ReleaseReport:
        """Re-validate one entity's parked events (by its key), or every parked entity's."""
        async with self._pool().acquire() as conn:
            if entity_key is None:
                entities = await quarantine.all_entities(conn, 1000)
            else:
                rows = await quarantine.list_page(
                    conn, entity_key=entity_key, reason=None, site=None, after_id=None, limit=1
                )
                entities = [rows[0].entity] if rows else []
        report = await self.release_entities(entities, MANUAL)
        await audit.record(
            self._pool(), actor=actor, action="release", target_kind="quarantine",
            target_id=entity_key or "*", outcome=f"released {len(report.released)}",
            detail={
                "entities": report.entities, "released": len(report.released),
                "still_parked": len(report.still_parked),
            },
        )  # fmt: skip
        return report

    async def release_entities(
        self, entities: list[str], trigger: str, *, up_to: int | None = None
    ) -> ReleaseReport:
        """Re-validate the queues of ``entities`` in order; publish what resolves, then forget
        it. ``up_to``: stop after that parked id (a person releasing one event)."""
        report = ReleaseReport(entities=len(entities))
        now = datetime.now(UTC)
        known: set[str] = set()
        async with self._pool().acquire() as conn, conn.transaction():
            await quarantine.lock_exclusive(conn)
            outgoing: list[Outgoing] = []
            released: list[Parked] = []
            queues = [await quarantine.queue_of(conn, entity) for entity in entities]
            decoded = {row.id: _decoded(row) for rows in queues for row in rows}
            named = {claim_of(e) for e in decoded.values() if isinstance(e, Event)}
            claims = await claims_repo.lookup(conn, (c for c in named if c is not None))
            charges: list[ClaimCharge] = []
            for rows in queues:
                for row in rows:
                    failures, validated, charge = self._revalidate(decoded[row.id], claims, now)
                    if charge is not None:  # a released charge makes its claim known
                        charges.append(charge)
                        claims.setdefault(
                            charge.claim_id, ClaimSite(charge.site, charge.location_id)
                        )
                    if failures:
                        report.still_parked[row.id] = failure_rows(failures)
                        await quarantine.still_failing(
                            conn, row.id, failure_rows(failures), wait_keys(failures)
                        )
                        # Announce only failures not recorded before (e.g. now inactive_…).
                        outgoing += await exception_records.record(
                            conn, self._records(row, failures), reannounce=False
                        )
                        break
                    if validated is not None:
                        outgoing.append(validated)
                    released.append(row)
                    if row.id == up_to:
                        break
            await publish_confirmed(self._js(), outgoing)
            await quarantine.remove(conn, [row.id for row in released])
            known = await claims_repo.index(conn, charges)
            for row in released:
                await exception_records.resolve_for(
                    conn,
                    STAGE,
                    row.stream,
                    row.stream_seq,
                    "redriven",
                    f"carebus-masterdata ({trigger})",
                    "released from quarantine after master-data validation",
                )
        report.released = [row.id for row in released]
        if known:
            self.changed({claim_key(claim_id) for claim_id in known})
        if released:
            self._metrics.released.labels(trigger).inc(len(released))
            log.info("released from quarantine", extra={"count": len(released), "trigger": trigger})
        self._gauges_stale.set()
        return report

    def _revalidate(
        self, event: Event | Failure, claims: dict[str, ClaimSite], now: datetime
    ) -> tuple[list[Failure], Outgoing | None, ClaimCharge | None]:
        if isinstance(event, Failure):
            return [event], None, None
        result = validate(self._view, event)
        booking = book(self._view, event, claims)
        failures = [*result.failures, *([booking] if isinstance(booking, Failure) else [])]
        if failures or result.enrichment is None:
            return failures, None, None
        booked = booking if isinstance(booking, Booking) else None
        validated = outgoing_for(validated_event(event, result.enrichment, now, booked))
        return [], validated, charge_of(event, result.enrichment)

    def _records(self, row: Parked, failures: list[Failure]) -> list[ExceptionRecord]:
        try:
            event = decode_message(row.subject, row.raw, row.headers)
        except (ContractDecodeError, UnknownContractError):
            return []
        stage = STAGE_BY_STREAM.get(row.stream, VALIDATOR_BILLING)
        return exception_records_for(
            stage, row.stream, row.stream_seq, row.subject, row.headers, row.raw, event, failures
        )

    # -- by hand -------------------------------------------------------------------------------
    async def release_one(self, parked_id: int, actor: str, request_id: str) -> ReleaseReport:
        """Re-validate now this event (and whatever of its entity is parked before it)."""
        async with self._pool().acquire() as conn:
            row = await quarantine.get(conn, parked_id)
        if row is None:
            raise Problem(404, "Not found", f"no parked event {parked_id}")
        report = await self.release_entities([row.entity], MANUAL, up_to=parked_id)
        async with self._pool().acquire() as conn:
            await changes_repo.audit(
                conn,
                actor=actor,
                action="release",
                kind="parked_event",
                record_id=str(parked_id),
                version=None,
                request_id=request_id,
                before={"event_id": row.event_id, "reasons": [f.reason for f in row.failures]},
                after={"released": parked_id in report.released},
            )
            await audit.record(
                conn, actor=actor, action="release", target_kind="parked_event",
                target_id=parked_id,
                outcome="released" if parked_id in report.released else "still_parked",
                detail={"request_id": request_id, "released": len(report.released)},
            )  # fmt: skip
        if parked_id not in report.released:
            blocking = next(iter(report.still_parked.items()), None)
            detail = "the event's references still do not resolve"
            if blocking is not None and blocking[0] != parked_id:
                detail = f"an earlier event of the same entity (parked id {blocking[0]}) is stuck"
            raise Problem(
                409,
                "Still unresolved",
                detail,
                extra={
                    "failures": [
                        {"parked_id": pid, "reason": f.reason, "path": f.path, "message": f.message}
                        for pid, fails in report.still_parked.items()
                        for f in fails
                    ]
                },
            )
        return report

    async def discard(self, parked_id: int, actor: str, request_id: str, note: str) -> Parked:
        """Drop a parked event for good (recorded), then let its entity's queue move on."""
        async with self._pool().acquire() as conn, conn.transaction():
            await quarantine.lock_exclusive(conn)
            row = await quarantine.get(conn, parked_id)
            if row is None:
                raise Problem(404, "Not found", f"no parked event {parked_id}")
            await quarantine.remove(conn, [parked_id])
            await exception_records.resolve_for(
                conn, STAGE, row.stream, row.stream_seq, "discarded", actor, note
            )
            await changes_repo.audit(
                conn,
                actor=actor,
                action="discard",
                kind="parked_event",
                record_id=str(parked_id),
                version=None,
                request_id=request_id,
                before={"event_id": row.event_id, "reasons": [f.reason for f in row.failures]},
                after={"note": note},
            )
            await audit.record(
                conn, actor=actor, action="discard", target_kind="parked_event",
                target_id=parked_id, outcome="discarded",
                detail={"request_id": request_id, "event_id": row.event_id},
            )  # fmt: skip
        self._metrics.discarded.inc()
        # Events queued behind it may now flow.
        await self.release_entities([row.entity], AUTO)
        return row


def _decoded(row: Parked) -> Event | Failure:
    try:
        return decode_message(row.subject, row.raw, row.headers)
    except (ContractDecodeError, UnknownContractError) as exc:
        # Cannot happen for a message that decoded when parked, unless contracts were rolled
        # back: keep it for a person to discard.
        return Failure("undecodable", "$", "", str(exc), ())
