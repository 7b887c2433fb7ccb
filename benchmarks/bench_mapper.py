"""`make bench`: mapper throughput (journals/s) next to a pass-through consumer, same run.

Both consume the same recorded VALIDATED stream (real NATS, file storage) through the same
stage runner with the same batch settings (fetch 200, 20 ms wait, pipelined confirmed
publishes, ack after confirm):
- pass-through: republishes each message unchanged (no decoding, no logic, no database);
- mapper: the real ``BatchMapper`` — typed decode, fencing against PostgreSQL (one read and
  one upsert per batch), rule matching, journal building, encode, publish.
Each is run several times, alternating; the median is reported. A last figure runs the
mapper as its real service process (FastStream subscriber) and times the ERP stream's
first to last journal.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from benchmarks.bench_report import report
from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.billing import CarcGroup, ClaimStatus
from carebus_mapper.adapters.fence_store import load_applied, save_applied
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.config import PACKAGE, SCHEMA
from carebus_mapper.domain.fencing import Applied, EntityRef
from carebus_mapper.handlers.stage import BatchMapper
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.provision import consumer_config, provision
from carebus_shared.jetstream.publish import Outgoing, stage_msg_id
from carebus_shared.jetstream.stage import Forward, Outcome, run_batch
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY, ConsumerSpec, Topology, as_whole
from tests.support.mapper import (
    adjustment,
    appointment,
    charge,
    claim,
    fresh_database,
    payment,
    validate,
)
from tests.support.service_process import ServiceProcess

EVENTS = 20_000
ROUNDS = 3
BATCH = 200
MAX_WAIT_S = 0.02
PASS_STREAM = "PASSTHRU"


def _workload(n: int) -> list[Any]:
    """A day's mix; every event yields exactly one journal under the default rules."""
    out: list[Any] = []
    i = 0
    while len(out) < n:
        key = f"{i:07d}"
        out += [
            validate(appointment(s.AppointmentBooked, f"A{key}", 1)),
            validate(charge(f"CH{key}", 12500 + i % 1000)),
            validate(payment(f"PAY{key}", 8000)),
            validate(adjustment(f"ADJ{key}", 2500, CarcGroup.CONTRACTUAL)),
            validate(adjustment(f"ADP{key}", 2000, CarcGroup.PATIENT_RESPONSIBILITY)),
            validate(claim(f"CLM{key}", ClaimStatus.PAID)),
            validate(appointment(s.AppointmentCancelled, f"A{key}", 2)),
        ]
        i += 1
    return out[:n]


async def _load(js: JetStreamContext, events: Sequence[Any]) -> None:
    for start in range(0, len(events), 1000):
        futures = [
            await js.publish_async(subject_for(e), encode(e), headers=headers_for(e))
            for e in events[start : start + 1000]
        ]
        await asyncio.gather(*futures)


async def _consume(
    js: JetStreamContext, durable: str, handle: Any, total: int
) -> tuple[float, float]:
    """Run the stage loop until ``total`` inputs are handled; (wall s, this process's CPU s)."""

    async def no_records(records: Sequence[ExceptionRecord]) -> None:
        raise AssertionError(f"unexpected rejections: {len(records)}")

    sub = await js.pull_subscribe_bind(durable, stream="VALIDATED")
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(total):  # bounded: at least one message per productive fetch
        if done >= total:
            break
        try:
            msgs = await sub.fetch(BATCH, timeout=MAX_WAIT_S)
        except TimeoutError:  # nats' own, or asyncio's that nats-py sometimes leaks
            continue
        state = handle if isinstance(handle, BatchMapper) else None  # its versions, saved
        tally = await run_batch(durable, js, msgs, handle, no_records, state=state)
        assert tally.retried == 0
        done += len(msgs)
    assert done == total
    return time.perf_counter() - wall, time.process_time() - cpu


def _pass_through(stage: str) -> Any:
    """Republish unchanged; ``stage`` keeps each round's output ids distinct, or JetStream
    would drop later rounds as duplicates without writing them."""

    async def handle(msgs: Sequence[Msg]) -> list[Outcome]:
        return [
            Forward(
                [
                    Outgoing(
                        f"passthru.{m.metadata.sequence.stream}",
                        m.data,
                        stage_msg_id(stage, (m.headers or {})["Nats-Msg-Id"]),
                    )
                ]
            )
            for m in msgs
        ]

    return handle


def _mapper(pool: asyncpg.Pool) -> BatchMapper:
    async def load(refs: Sequence[EntityRef]) -> Mapping[EntityRef, Applied]:
        async with pool.acquire() as conn:
            return await load_applied(conn, refs)

    async def save(applied: Mapping[EntityRef, Applied]) -> None:
        async with pool.acquire() as conn:
            await save_applied(conn, applied)

    return BatchMapper(load_rule_set(), load, save)


async def _add_durable(js: JetStreamContext, name: str) -> None:
    spec = as_whole(MAPPER)
    await js.add_consumer(
        "VALIDATED",
        consumer_config(ConsumerSpec(spec.stream, name, spec.filter_subjects, "bench")),
    )


async def _in_process(url: str, db_url: str) -> dict[str, Any]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await provision(js, Topology(streams=TOPOLOGY.streams, consumers=()))
    await js.add_stream(name=PASS_STREAM, subjects=["passthru.>"], duplicate_window=120)
    await _load(js, _workload(EVENTS))
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    mapper = _mapper(pool)
    passes: list[tuple[float, float]] = []
    maps: list[tuple[float, float]] = []
    for round_ in range(ROUNDS):
        tag = uuid.uuid4().hex[:6]
        await _add_durable(js, f"pass-{tag}")
        passes.append(await _consume(js, f"pass-{tag}", _pass_through(f"pass-{tag}"), EVENTS))
        await _add_durable(js, f"map-{tag}")
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE carebus_mapper.entity_version")
        # Each round maps with a new rule-set version: new journal ids, so the ERP
        # stream's duplicate window does not make later rounds cheaper.
        mapper.rules = _versioned(mapper.rules, round_)
        maps.append(await _consume(js, f"map-{tag}", mapper, EVENTS))
    journals = (await js.stream_info("ERP")).state.messages
    passed = (await js.stream_info(PASS_STREAM)).state.messages
    await pool.close()
    await nc.close()
    assert journals == passed == EVENTS * ROUNDS  # every output really written
    pass_rate = statistics.median(EVENTS / wall for wall, _ in passes)
    map_rate = statistics.median(EVENTS / wall for wall, _ in maps)
    return {
        "events_per_run": EVENTS,
        "rounds": ROUNDS,
        "batch_size": BATCH,
        "max_wait_ms": round(MAX_WAIT_S * 1000),
        "pass_through_msgs_per_s": pass_rate,
        "mapper_journals_per_s": map_rate,
        "mapper_to_pass_through_ratio": map_rate / pass_rate,
        "pass_through_client_cpu_us_per_msg": statistics.median(
            c / EVENTS * 1e6 for _, c in passes
        ),
        "mapper_client_cpu_us_per_journal": statistics.median(c / EVENTS * 1e6 for _, c in maps),
        "pass_through_runs_per_s": [round(EVENTS / wall) for wall, _ in passes],
        "mapper_runs_per_s": [round(EVENTS / wall) for wall, _ in maps],
    }


def _versioned(rules: Any, round_: int) -> Any:
    import dataclasses

    return dataclasses.replace(rules, version=f"bench.{round_}")


async def _service_process(url: str, db_url: str, tmp: Path) -> dict[str, Any]:
    """The real service: a stream preloaded, then the MAPPER durables (one per partition)
    appear and it drains."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.purge_stream("ERP")
    await js.delete_stream("VALIDATED")
    await provision(
        js, Topology(streams=TOPOLOGY.streams, consumers=(TOPOLOGY.consumer("exception-capture"),))
    )
    await _load(js, _workload(EVENTS))
    port = free_port()
    env = {
        "NATS_URL": url,
        "DATABASE_URL": db_url,
        "CAREBUS_MAPPER_HTTP_PORT": str(port),
        "CAREBUS_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "carebus_mapper.entrypoints.cli", "serve"]
    process = ServiceProcess(argv, env, port, tmp / "mapper.log").start()
    try:
        await asyncio.sleep(1.0)
        for spec in TOPOLOGY.stage(MAPPER):
            await js.add_consumer("VALIDATED", consumer_config(spec))
        deadline = time.monotonic() + 300
        while (await js.stream_info("ERP")).state.messages < EVENTS:
            assert time.monotonic() < deadline, "the service did not drain in 300 s"
            await asyncio.sleep(0.5)
        info = await js.stream_info("ERP")
        first = await js.get_msg("ERP", info.state.first_seq)
        last = await js.get_msg("ERP", info.state.last_seq)
        span = _stamp(last) - _stamp(first)
    finally:
        process.terminate()
        await nc.close()
    return {"service_process_journals_per_s": (EVENTS - 1) / span}


def _stamp(msg: Any) -> float:
    """The server's store time of a stream message."""
    assert msg.time is not None
    return float(msg.time.timestamp())


def test_mapper_throughput_next_to_pass_through(database_url: str, tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        server = NatsServer(tmp_path / "nats")
        server.start()
        try:
            async with fresh_database(database_url) as db_url:
                conn = await asyncpg.connect(db_url)
                await migrate(conn, SCHEMA, load_migrations(PACKAGE))
                await conn.close()
                figures = await _in_process(server.url, db_url)
                async with fresh_database(database_url) as service_db:
                    figures.update(await _service_process(server.url, service_db, tmp_path))
                return figures
        finally:
            server.stop()

    load_before = os.getloadavg()[0]
    figures = asyncio.run(main())
    # Other work on the machine moves these figures; the CPU per journal moves least.
    figures["load_average_1m_at_start"] = load_before
    report("mapper", figures)
    assert figures["mapper_journals_per_s"] > 0
