"""The mapping stage in process, on a real JetStream and a real PostgreSQL: journals are
confirmed before versions are stored, so a redelivery never doubles and never loses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace

import asyncpg
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_contracts import Event, decode_as, encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.validated import Validated
from carebus_mapper.adapters.fence_store import load_applied, save_applied
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.config import PACKAGE, SCHEMA
from carebus_mapper.domain.fencing import Applied, EntityRef
from carebus_mapper.domain.rules import RuleSet
from carebus_mapper.handlers.stage import BatchMapper
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import publish_confirmed
from carebus_shared.jetstream.stage import (
    BatchTally,
    Forward,
    PreparedBatch,
    prepare_batch,
    run_batch,
)
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY
from tests.support.mapper import appointment, charge, fresh_database, validate
from tests.support.partitions import whole_stage

RULES = load_rule_set()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with fresh_database(database_url) as url:
        conn = await asyncpg.connect(url)
        await migrate(conn, SCHEMA, load_migrations(PACKAGE))
        await conn.close()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        yield pool
        await pool.close()


@pytest.fixture
async def stage_js(private_nats: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    # One durable for the whole stage: these tests fetch several entities' events in one
    # batch, whatever partitions they are in (the handler does not care).
    await provision(js, whole_stage(TOPOLOGY, MAPPER))
    yield js
    await nc.close()


def _mapper(pool: asyncpg.Pool, rules: RuleSet = RULES) -> BatchMapper:
    async def load(refs: Sequence[EntityRef]) -> Mapping[EntityRef, Applied]:
        async with pool.acquire() as conn:
            return await load_applied(conn, refs)

    async def save(applied: Mapping[EntityRef, Applied]) -> None:
        async with pool.acquire() as conn:
            await save_applied(conn, applied)

    return BatchMapper(rules, load, save)


async def _run(js: JetStreamContext, msgs: Sequence[Msg], mapper: BatchMapper) -> BatchTally:
    """One batch through the stage runner, as the service runs it."""
    return await run_batch("mapper", js, msgs, mapper, _no_records, state=mapper)


async def _publish(js: JetStreamContext, *events: Validated[object]) -> None:
    for event in events:
        await js.publish(subject_for(event), encode(event), headers=headers_for(event))


async def _publish_copies(js: JetStreamContext, *events: Validated[object]) -> None:
    """The same events under new message ids, as `carebus replay` republishes them."""
    for event in events:
        headers = {**headers_for(event), "Nats-Msg-Id": f"copy-{event.event_id}"}
        await js.publish(subject_for(event), encode(event), headers=headers)


async def _journals(js: JetStreamContext) -> list[JournalEntryRequested]:
    info = await js.stream_info("ERP")
    if info.state.messages == 0:
        return []
    return [
        decode_as(JournalEntryRequested, (await js.get_msg("ERP", seq)).data)
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


async def _no_records(records: Sequence[ExceptionRecord]) -> None:
    raise AssertionError(f"unexpected exception records: {records}")


async def test_a_redelivery_after_a_crash_posts_each_journal_once(
    stage_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    js = stage_js
    mapper = _mapper(pool)
    await _publish(
        js,
        validate(appointment(s.AppointmentBooked, "A1", 1)),
        validate(appointment(s.AppointmentCancelled, "A1", 2)),
        validate(charge("CH-1", 4200)),
    )
    sub = await js.pull_subscribe_bind(MAPPER, stream="VALIDATED")
    first = await sub.fetch(3, timeout=5)
    # The journals are published and confirmed, the versions stored, then the process "dies"
    # before acking.
    prepared = await prepare_batch("mapper", js, first, mapper, _no_records, state=mapper)
    assert prepared.outcomes is not None
    assert [len(o.outgoing) for o in prepared.outcomes if isinstance(o, Forward)] == [1, 1, 1]
    await publish_confirmed(js, prepared.outgoing)
    await mapper.save(first)
    for msg in first:
        await msg.nak()
    again = await _fetch_all(sub, 3)
    assert [m.metadata.num_delivered for m in again] == [2, 2, 2]
    tally = await _run(js, again, mapper)
    assert (tally.forwarded, tally.rejected, tally.retried) == (3, 0, 0)

    journals = await _journals(js)
    assert sorted(j.mapping_rule or "" for j in journals) == [
        "appointment-booked",
        "appointment-cancelled-released",
        "charge-posted",
    ]
    assert len({j.journal_id for j in journals}) == 3
    info = await js.consumer_info("VALIDATED", MAPPER)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM carebus_mapper.entity_version")
    assert sorted(
        (r["entity"], r["entity_key"], r["entity_version"], r["state"]) for r in rows
    ) == [("appointment", "A1", 2, "cancelled"), ("event", "CH-1-post", 1, None)]


async def _fetch_all(sub: JetStreamContext.PullSubscription, count: int) -> list[Msg]:
    """``count`` messages, naked ones included (they come back after their delay)."""
    got: list[Msg] = []
    for _ in range(10):  # bounded: a fetch waits up to 5 s
        if len(got) == count:
            break
        got += await sub.fetch(count - len(got), timeout=5)
    return got


async def _prepare_next(
    js: JetStreamContext,
    sub: JetStreamContext.PullSubscription,
    mapper: BatchMapper,
    event: Event,
) -> PreparedBatch:
    """``event`` validated and published, then fetched alone as a batch, handled and its
    journal sent: not confirmed, its version not stored."""
    await _publish(js, validate(event))
    msgs = await sub.fetch(1, timeout=5)
    return await prepare_batch("mapper", js, msgs, mapper, _no_records, state=mapper)


async def _booked_then_cancelled_released(
    js: JetStreamContext, pool: asyncpg.Pool, key: str
) -> None:
    """The ERP stream holds the booking's journal, then the cancellation's that released
    its forecast, each once; the appointment's stored version is the cancellation."""
    assert [j.mapping_rule for j in await _journals(js)] == [
        "appointment-booked",
        "appointment-cancelled-released",
    ]
    async with pool.acquire() as conn:
        stored = await conn.fetchrow(
            "SELECT entity_version, state FROM carebus_mapper.entity_version WHERE entity_key = $1",
            key,
        )
    assert tuple(stored) == (2, "cancelled")


async def test_a_batch_handled_before_the_last_one_is_confirmed_fences_against_it(
    stage_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    js = stage_js
    mapper = _mapper(pool)
    sub = await js.pull_subscribe_bind(MAPPER, stream="VALIDATED")
    first = await _prepare_next(js, sub, mapper, appointment(s.AppointmentBooked, "A9", 1))
    # The booking is neither confirmed nor stored: the cancellation still sees it booked.
    second = await _prepare_next(js, sub, mapper, appointment(s.AppointmentCancelled, "A9", 2))
    assert (await first.finish()).forwarded == 1
    assert (await second.finish(before_ok=True)).forwarded == 1
    await _booked_then_cancelled_released(js, pool, "A9")


async def test_when_a_batch_fails_the_one_handled_on_top_of_it_goes_back_too(
    stage_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    js = stage_js
    mapper = _mapper(pool)
    store_once_more = mapper.save_applied
    failures = [RuntimeError("the store refused the versions")]

    async def fails_once(applied: Mapping[EntityRef, Applied]) -> None:
        if failures:
            raise failures.pop()
        await store_once_more(applied)

    mapper.save_applied = fails_once
    sub = await js.pull_subscribe_bind(MAPPER, stream="VALIDATED")
    first = await _prepare_next(js, sub, mapper, appointment(s.AppointmentBooked, "A10", 1))
    second = await _prepare_next(js, sub, mapper, appointment(s.AppointmentCancelled, "A10", 2))
    failed = await first.finish()
    behind = await second.finish(before_ok=not failed.failed)
    assert (failed.failed, failed.retried) == (True, 1)
    assert (behind.failed, behind.forwarded, behind.retried) == (True, 0, 1)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM carebus_mapper.entity_version") == 0

    # Both come back and are mapped again, as they were: each journal is on the stream once.
    tally = await _run(js, await _fetch_all(sub, 2), mapper)
    assert (tally.forwarded, tally.failed) == (2, False)
    await _booked_then_cancelled_released(js, pool, "A10")
    info = await js.consumer_info("VALIDATED", MAPPER)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_a_stale_update_is_acked_without_a_journal_and_fences_across_batches(
    stage_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    js = stage_js
    mapper = _mapper(pool)
    sub = await js.pull_subscribe_bind(MAPPER, stream="VALIDATED")
    await _publish(js, validate(appointment(s.AppointmentNoShow, "A2", 5)))
    await _run(js, await sub.fetch(1, timeout=5), mapper)
    # Older versions arrive later, one of them in the same batch as a newer one.
    await _publish(
        js,
        validate(appointment(s.AppointmentBooked, "A2", 3)),
        validate(appointment(s.AppointmentCompleted, "A2", 7)),
        validate(appointment(s.AppointmentRescheduled, "A2", 6)),
    )
    tally = await _run(js, await sub.fetch(3, timeout=5), mapper)
    assert (tally.forwarded, tally.rejected) == (3, 0)
    journals = await _journals(js)
    assert [j.mapping_rule for j in journals] == ["appointment-no-show", "appointment-completed"]
    async with pool.acquire() as conn:
        version, state = await conn.fetchrow(
            "SELECT entity_version, state FROM carebus_mapper.entity_version "
            "WHERE entity_key = 'A2'"
        )
    assert (version, state) == (7, "completed")


async def test_a_replay_under_a_new_rule_set_version_posts_no_journal_again(
    stage_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    """A transaction is not fenced by version (each posts), but it is mapped once: the
    journal key holds the rule-set version, so mapping it again under the next version
    would request a second journal of another id, and the poster would post both."""
    js = stage_js
    day = (
        validate(charge("CH-7", 4200)),
        validate(appointment(s.AppointmentBooked, "A7", 1)),
        validate(appointment(s.AppointmentCompleted, "A7", 2)),
    )
    await _publish(js, *day)
    sub = await js.pull_subscribe_bind(MAPPER, stream="VALIDATED")
    await _run(js, await sub.fetch(3, timeout=5), _mapper(pool))
    assert len(await _journals(js)) == 3

    next_version = replace(RULES, version="2099.01.1")
    await _publish_copies(js, *day)
    mapper = _mapper(pool, next_version)
    tally = await _run(js, await sub.fetch(3, timeout=5), mapper)
    assert (tally.forwarded, tally.rejected) == (3, 0)
    assert len(await _journals(js)) == 3


async def test_fence_store_only_moves_forward(pool: asyncpg.Pool) -> None:
    ref = ("S", "claim", "CLM-1")
    async with pool.acquire() as conn:
        await save_applied(conn, {ref: Applied(5, "e5", "paid")})
        await save_applied(conn, {ref: Applied(3, "e3", "denied")})  # a racing older replica
        assert await load_applied(conn, [ref, ("S", "claim", "none")]) == {
            ref: Applied(5, "e5", "paid")
        }
        await save_applied(conn, {ref: Applied(6, "e6", "reversed")})
        assert (await load_applied(conn, [ref]))[ref] == Applied(6, "e6", "reversed")


async def test_fence_store_keeps_sites_and_entities_apart(pool: asyncpg.Pool) -> None:
    """The store reads by key alone; the same key at another site or of another entity
    must not answer for it."""
    here, other_site, other_entity = (
        ("S", "claim", "K-9"),
        ("T", "claim", "K-9"),
        (
            "S",
            "appointment",
            "K-9",
        ),
    )
    async with pool.acquire() as conn:
        await save_applied(conn, {other_site: Applied(4, "e4", "paid")})
        await save_applied(conn, {other_entity: Applied(2, "e2", "booked")})
        assert await load_applied(conn, [here]) == {}
        await save_applied(conn, {here: Applied(1, "e1", "submitted")})
        assert await load_applied(conn, [here, other_site]) == {
            here: Applied(1, "e1", "submitted"),
            other_site: Applied(4, "e4", "paid"),
        }


async def _seq_scans(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    scans = await conn.fetchval(
        "SELECT seq_scan FROM pg_stat_user_tables "
        "WHERE schemaname = 'carebus_mapper' AND relname = 'entity_version'"
    )
    return int(scans or 0)


async def test_the_fencing_read_stays_on_the_index_after_the_table_grew(
    pool: asyncpg.Pool,
) -> None:
    """A connection's fencing read was a cached prepared statement: its generic plan, made
    while the table was small (a fresh stack, the first batches), could be a full scan and
    stayed one as a remittance file grew the table: 36 ms per batch at ~60,000 entities
    during a 10,000-claim 835, the database's costliest statement (docs/decisions/031,
    addendum). Planned per call, it reads the index whatever the statistics said."""

    def applied(n: int) -> dict[EntityRef, Applied]:
        keys = [str(uuid.uuid4()) for _ in range(n)]
        return {("CBO", "event", k): Applied(1, k, None) for k in keys}

    async with pool.acquire() as conn:
        await save_applied(conn, applied(200))
        for _ in range(8):  # enough runs for PostgreSQL to settle on a generic plan
            await load_applied(conn, list(applied(100)))
        grown = applied(60_000)
        await save_applied(conn, grown)
        before = await _seq_scans(conn)
        wanted = [*list(grown)[:3], *applied(97)]
        found = await load_applied(conn, wanted)
        assert found == {ref: grown[ref] for ref in list(grown)[:3]}
        assert await _seq_scans(conn) == before
