"""A batch parking an event while the master data (or the claim) it misses arrives: the race
that left the replay test's charge parked for a service that existed. The real ``Validator``
and ``Quarantine`` run in this process on a real NATS and PostgreSQL; what the test holds (the
batches' connections, the quarantine lock, a row the batches' inserts conflict with) forces the
interleaving, for every kind of wait key:

- *after the lookup*: the batches' lookups in the view missed; the change lands and its
  release scan runs to its end before they take the quarantine lock to park (what the
  validator's log showed in the failing replay test; a claim is looked up in the database,
  so after the connection: for it, the charge is indexed first);
- *waiting for the lock*: the batches wait for the quarantine lock to park; the change lands
  and its release scan starts;
- *before the commit*: the batches are past their checks, inserting their parked rows; the
  change lands and its release scan starts.

Either way each event must come out validated once (forwarded by its batch or released from
quarantine) and nothing of it stay parked. Each event is its own batch, all at once: batches
of different entities, as partitioned consumers run them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import asyncpg
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import CollectorRegistry

from carebus_contracts import decode_message, encode
from carebus_contracts.envelope import Event
from carebus_contracts.masterdata import (
    ChangeKind,
    CodeSystem,
    CostCentre,
    CrossReference,
    EntityKind,
    Location,
    Payer,
    PayerClass,
    Provider,
    Service,
)
from carebus_contracts.validated import Validated
from carebus_masterdata_validator.adapters import quarantine_repo
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.quarantine_repo import NewParked
from carebus_masterdata_validator.config import PACKAGE, SCHEMA
from carebus_masterdata_validator.domain.kinds import BY_MODEL, Record
from carebus_masterdata_validator.domain.view import MasterDataView, decode_change
from carebus_masterdata_validator.handlers.quarantine import Quarantine
from carebus_masterdata_validator.handlers.validate import Validator, entity_of
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.jetstream.stage import Forward, Outcome
from carebus_shared.jetstream.topology import VALIDATOR_BILLING
from tests.support.masterdata import VALID_NPIS, charge, eventually, publish, remittance, unique

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
KINDS = ("service", "payer", "location", "cost_centre", "provider", "cross_reference", "claim")
Moment = Literal["after_the_lookup", "waiting_for_the_lock", "before_the_commit"]
MOMENTS: tuple[Moment, ...] = ("after_the_lookup", "waiting_for_the_lock", "before_the_commit")


@pytest.fixture(scope="module")
async def md_pool(md_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(md_database_url)
    try:
        await migrate(conn, "carebus_exceptions", load_migrations("carebus_shared.exceptions"))
        await migrate(conn, SCHEMA, load_migrations(PACKAGE))
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(md_database_url, min_size=2, max_size=8)
    yield pool
    await pool.close()


class MasterData:
    """One test's own master data: what a charge at its site needs, each record unique."""

    def __init__(self) -> None:
        self.site, self.source = unique("S"), unique("billing-")
        self.cost_centre = CostCentre(cost_centre_id=unique("CC-"), name="Clinic ops")
        self.service = Service(
            service_code=unique("SV"), code_system=CodeSystem.CPT, description="Office visit"
        )
        self.payer = Payer(payer_id=unique("PY-"), name="Acme", payer_class=PayerClass.COMMERCIAL)
        self.provider = Provider(provider_id=unique("P-"), npi=VALID_NPIS[0], name="Dr Who")
        self.doctor_code, self.location_id = unique("DOC-"), unique("L-")

    def location(self) -> Location:
        return Location(
            location_id=self.location_id, name="Clinic", place_of_service="11",
            time_zone="America/Chicago", cost_centre_id=self.cost_centre.cost_centre_id,
        )  # fmt: skip

    def xref(self) -> CrossReference:
        return CrossReference(
            source_system=self.source, kind=EntityKind.PROVIDER,
            source_code=self.doctor_code, canonical_id=self.provider.provider_id,
        )  # fmt: skip

    def records(self) -> dict[str, Record]:
        return {
            "service": self.service, "payer": self.payer, "location": self.location(),
            "cost_centre": self.cost_centre, "provider": self.provider,
            "cross_reference": self.xref(),
        }  # fmt: skip

    def charge(self, claim: str | None = None) -> Event:
        return charge(
            site=self.site, source=self.source, charge_id=unique("CH-"),
            service_code=self.service.service_code, payer_code=self.payer.payer_id,
            provider_code=self.doctor_code, location_code=self.location_id, encounter_id=claim,
        )  # fmt: skip


def _apply(view: MasterDataView, record: Record) -> set[str]:
    """What the view watcher does with a record's KV value; the wait keys it touches."""
    spec = BY_MODEL[type(record)]
    event = spec.change_event(record, ChangeKind.UPSERTED, 1, at=AT, correlation_id="race")
    return view.apply(spec.kv_key(spec.record_id(record)), decode_change(encode(event)))


async def _fetch(js: JetStreamContext, events: list[Event]) -> list[Msg]:
    """``events`` published to BILLING and read back as the validator's consumer gets them."""
    await publish(js, events)
    sub = await js.pull_subscribe(
        f"billing.*.*.*.{events[0].site}.>",
        stream="BILLING",
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, inactive_threshold=60
        ),
    )
    msgs: list[Msg] = []
    for _ in range(20):  # bounded: the messages are in the stream already
        if len(msgs) >= len(events):
            break
        msgs += await sub.fetch(len(events) - len(msgs), timeout=1)
    await sub.unsubscribe()
    assert len(msgs) == len(events)
    return msgs


async def _waiting(db: asyncpg.Connection, locktype: str, modes: tuple[str, ...]) -> int:
    """How many backends of this database wait for a lock of ``locktype`` in ``modes``."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE a.datname = current_database() AND NOT l.granted AND l.locktype = $1 "
        "AND l.mode = ANY($2::text[])",
        locktype,
        list(modes),
    )
    return count


def _placeholder(event: Event) -> NewParked:
    """A row under ``event``'s id, never committed: the batch's own insert waits behind it."""
    return NewParked(
        event_id=event.event_id, entity="placeholder", stream="BILLING", stream_seq=0,
        subject="placeholder", headers={}, raw=b"", event_type=event.event_type,
        site=event.site, failures=(), missing_keys=(),
    )  # fmt: skip


def _validated_ids(outcomes: list[Outcome]) -> list[str]:
    """The source event ids a batch forwarded as validated (not as exception events)."""
    ids = []
    for outcome in outcomes:
        for out in outcome.outgoing if isinstance(outcome, Forward) else ():
            event = decode_message(out.subject, out.payload, dict(out.headers))
            if isinstance(event, Validated):
                ids.append(event.original.event_id)
    return ids


async def _released_ids(js: JetStreamContext, wanted: set[str]) -> list[str]:
    """The source event ids among ``wanted`` the quarantine published as validated."""
    sub = await js.pull_subscribe(
        "validated.>",
        stream="VALIDATED",
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    ids: list[str] = []
    for _ in range(100):  # bounded: the stream holds only this module's events
        try:
            msgs = await sub.fetch(500, timeout=0.5)
        except TimeoutError:
            break
        for msg in msgs:
            event = decode_message(msg.subject, msg.data, msg.headers)
            if isinstance(event, Validated) and event.original.event_id in wanted:
                ids.append(event.original.event_id)
    await sub.unsubscribe()
    return ids


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("kind", KINDS)
async def test_what_a_batch_parks_while_its_missing_reference_arrives_is_not_left_waiting(
    md_pool: asyncpg.Pool,
    md_database_url: str,
    md_js: JetStreamContext,
    kind: str,
    moment: Moment,
) -> None:
    data = MasterData()
    view = MasterDataView()
    records = data.records()
    missing = records.pop(kind, None)
    for record in records.values():
        _apply(view, record)
    ready = asyncio.Event()
    ready.set()
    metrics = ValidatorMetrics(CollectorRegistry())
    quarantine = Quarantine(view, lambda: md_pool, lambda: md_js, metrics)
    claims_known: set[str] = set()

    claim = unique("V")
    if kind == "claim":  # an 835's claim and payment (two entities) before the claim's charge
        events = remittance(
            site=unique("CBO"), source="x12-835", key=unique("R"),
            payer_code=data.payer.payer_id, claim_id=claim,
        )[:2]  # fmt: skip
    else:  # two charges (two entities) missing the same master data
        events = [data.charge(), data.charge()]
    msgs = await _fetch(md_js, events)

    async def arrives() -> set[str]:
        """The missing reference arrives; the wait keys whose release it triggers."""
        if missing is not None:
            return _apply(view, missing)
        # The claim's charge, validated by another consumer (its own pool) on the same view.
        other = Validator(view, ready, lambda: md_pool, metrics, claims_known=claims_known.update)
        (first_charge,) = await _fetch(md_js, [data.charge(claim)])
        assert _validated_ids(await other.handle(VALIDATOR_BILLING, [first_charge]))
        return set(claims_known)

    # The batches' own connections: held by the test, they stop the batches after the lookup.
    batch_pool = await asyncpg.create_pool(md_database_url, min_size=len(msgs), max_size=len(msgs))
    validator = Validator(view, ready, lambda: batch_pool, metrics)
    # ``holder`` holds the locks that stop the batches; ``observer`` watches who waits.
    holder = await asyncpg.connect(md_database_url)
    observer = await asyncpg.connect(md_database_url)
    held = holder.transaction()
    await held.start()
    taken = [await batch_pool.acquire() for _ in msgs] if moment == "after_the_lookup" else []
    try:
        if moment == "waiting_for_the_lock":
            await quarantine_repo.lock_exclusive(holder)  # the batches queue behind it
        elif moment == "before_the_commit":  # the batches' inserts wait behind these rows
            await quarantine_repo.park(holder, [_placeholder(e) for e in events])
        batches = [asyncio.create_task(validator.handle(VALIDATOR_BILLING, [msg])) for msg in msgs]
        await _until(lambda: _stopped(observer, moment, batches), "every batch stopped there")
        scan = asyncio.create_task(quarantine.release_waiting(await arrives()))
        await _until(
            lambda: _scan_done_or_waiting(observer, scan), "the release scan done or waiting"
        )
    finally:
        for conn in taken:
            await batch_pool.release(conn)
        await held.rollback()
        await holder.close()
        await observer.close()
    outcomes = [outcome for batch in batches for outcome in await batch]
    await scan
    await batch_pool.close()

    wanted = {e.event_id for e in events}
    validated = _validated_ids(outcomes) + await _released_ids(md_js, wanted)
    async with md_pool.acquire() as conn:
        left = await quarantine_repo.parked_entities(
            conn, [entity_of("BILLING", e) for e in events]
        )
    assert left == set(), f"left parked after the {kind} arrived {moment.replace('_', ' ')}"
    assert sorted(validated) == sorted(wanted)


async def _stopped(
    observer: asyncpg.Connection, moment: Moment, batches: list[asyncio.Task[list[Outcome]]]
) -> bool:
    """Whether every batch is where ``moment`` stops it."""
    if any(batch.done() for batch in batches):
        return False
    if moment == "after_the_lookup":
        # Tasks run in the order created: after one yield, each batch has run its first step,
        # the lookup in the view, and waits for a connection (the test holds them all).
        await asyncio.sleep(0)
        return not any(batch.done() for batch in batches)
    locktype = "advisory" if moment == "waiting_for_the_lock" else "transactionid"
    return await _waiting(observer, locktype, ("ShareLock",)) >= len(batches)


async def _scan_done_or_waiting(db: asyncpg.Connection, scan: asyncio.Task[None]) -> bool:
    return scan.done() or await _waiting(db, "advisory", ("ExclusiveLock",)) >= 1


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    await eventually(probe, what, timeout_s=10)
