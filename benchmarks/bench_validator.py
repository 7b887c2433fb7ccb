"""`make bench`: master-data validation (validated events/s, warm view) next to a pass-through
consumer, in the same run.

Both consume the same appointment events from the SCHEDULING stream (real NATS, file
storage) through the same stage runner with the same batch settings (fetch 200, 20 ms wait,
pipelined confirmed publishes, ack after confirm):
- pass-through: republishes each message unchanged (no decoding, no logic, no database);
- validator: the real ``Validator`` — typed decode (with upcasting), four references per event
  resolved for the appointment's date in the in-memory view (provider through the source
  system's cross-reference, location, department, service), the cost centre derived,
  ``Validated…`` built and encoded, one quarantine check in PostgreSQL per batch, publish.
The view is warm: loaded, through the KV wire format, before timing starts. Each round loads
fresh events (new ids, so JetStream's duplicate window does not flatter later rounds); the
two consumers alternate, and the median of the rounds is reported.

CPU is this process's (``time.process_time``) per event, median of the rounds;
``validation_cpu_us_per_event`` is the validator's minus the pass-through's.

Run: ``.venv/bin/pytest benchmarks/bench_validator.py -s`` (figures in .data/bench/validator.json)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from prometheus_client import CollectorRegistry

from benchmarks.bench_report import report
from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.masterdata import (
    ChangeKind,
    CodeSystem,
    CostCentre,
    CrossReference,
    Department,
    EntityKind,
    Location,
    Provider,
    Service,
)
from carebus_contracts.scheduling import Appointment, AppointmentBooked, AppointmentStatus
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.config import PACKAGE, SCHEMA
from carebus_masterdata_validator.domain.kinds import BY_MODEL, Record
from carebus_masterdata_validator.domain.npi import npi_check_digit_ok
from carebus_masterdata_validator.domain.view import MasterDataView, decode_change
from carebus_masterdata_validator.handlers.validate import Validator
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, stage_msg_id
from carebus_shared.jetstream.stage import Forward, Outcome, run_batch
from carebus_shared.jetstream.topology import TOPOLOGY, Topology

EVENTS = 20_000
ROUNDS = 3
BATCH = 200
MAX_WAIT_S = 0.02
PROVIDERS = 2_000
LOCATIONS = 50
DEPARTMENTS = 40
SERVICES = 500
SOURCE = "bench-ehr"
PASS_STREAM = "PASSTHRU"
CHICAGO = dt.timezone(dt.timedelta(hours=-6))
AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _npis(count: int) -> list[str]:
    out, n = [], 1_000_000_000
    while len(out) < count:
        n += 1
        if npi_check_digit_ok(str(n)):
            out.append(str(n))
    return out


def _master_data() -> list[Record]:
    records: list[Record] = [
        CostCentre(cost_centre_id=f"CC-{i}", name=f"CC {i}") for i in range(20)
    ]
    records += [
        Location(
            location_id=f"L-{i}",
            name=f"Clinic {i}",
            place_of_service="11",
            time_zone="America/Chicago",
            cost_centre_id=f"CC-{i % 20}",
            valid_from=dt.date(2020, 1, 1),
        )
        for i in range(LOCATIONS)
    ]
    records += [
        Department(department_id=f"D-{i}", name=f"Dept {i}", cost_centre_id=f"CC-{i % 20}")
        for i in range(DEPARTMENTS)
    ]
    records += [
        Service(service_code=f"{99000 + i}", code_system=CodeSystem.CPT, description="visit")
        for i in range(SERVICES)
    ]
    for i, npi in enumerate(_npis(PROVIDERS)):
        records.append(
            Provider(
                provider_id=f"P-{i}",
                npi=npi,
                name=f"Provider {i}",
                department_id=f"D-{i % DEPARTMENTS}",
                valid_from=dt.date(2020, 1, 1),
                valid_to=dt.date(2030, 12, 31),
            )
        )
        records.append(
            CrossReference(
                source_system=SOURCE,
                kind=EntityKind.PROVIDER,
                source_code=f"{1000 + i}^DOC^{i}",
                canonical_id=f"P-{i}",
            )
        )
    return records


def _warm_view(records: Sequence[Record]) -> MasterDataView:
    """What the KV watch does on start-up: each record's change event, decoded, applied."""
    view = MasterDataView()
    for record in records:
        spec = BY_MODEL[type(record)]
        event = spec.change_event(record, ChangeKind.UPSERTED, 1, at=AT, correlation_id="bench")
        view.apply(spec.kv_key(spec.record_id(record)), decode_change(encode(event)))
    return view


def _workload(tag: str, n: int) -> list[AppointmentBooked]:
    out = []
    for i in range(n):
        start = dt.datetime(2025, 3, 3, 8, 0, tzinfo=CHICAGO) + dt.timedelta(minutes=15 * i)
        key = f"A{tag}{i:06d}"
        out.append(
            AppointmentBooked(
                event_id=f"evt-{key}",
                occurred_at=start - dt.timedelta(days=7),
                recorded_at=AT,
                source_system=SOURCE,
                site="SITE01",
                correlation_id=f"corr-{key}",
                entity_key=key,
                entity_version=1,
                appointment=Appointment(
                    appointment_id=key,
                    patient_ref=f"MRN-{i % 5000:05d}",
                    provider_code=f"{1000 + i % PROVIDERS}^DOC^{i % PROVIDERS}",
                    location_code=f"L-{i % LOCATIONS}",
                    department_code=f"D-{i % DEPARTMENTS}",
                    service_code=f"{99000 + i % SERVICES}",
                    slot_start=start,
                    slot_end=start + dt.timedelta(minutes=15),
                    status=AppointmentStatus.BOOKED,
                    reason="follow-up",
                ),
            )
        )
    return out


async def _load(js: JetStreamContext, events: Sequence[AppointmentBooked]) -> int:
    """Publish ``events``; the stream sequence of the first."""
    first = (await js.stream_info("SCHEDULING")).state.last_seq + 1
    for start in range(0, len(events), 1000):
        futures = [
            await js.publish_async(subject_for(e), encode(e), headers=headers_for(e))
            for e in events[start : start + 1000]
        ]
        await asyncio.gather(*futures)
    return first


async def _durable(js: JetStreamContext, name: str, first_seq: int) -> None:
    await js.add_consumer(
        "SCHEDULING",
        api.ConsumerConfig(
            durable_name=name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first_seq,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=60,
            max_ack_pending=10_000,
            filter_subject="scheduling.>",
        ),
    )


async def _consume(js: JetStreamContext, durable: str, handle: Any) -> tuple[float, float]:
    """Run the stage loop over ``EVENTS`` inputs; (wall s, this process's CPU s)."""

    async def no_records(records: Sequence[ExceptionRecord]) -> None:
        raise AssertionError(f"unexpected rejections: {len(records)}")

    sub = await js.pull_subscribe_bind(durable, stream="SCHEDULING")
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(EVENTS):  # bounded: every productive fetch handles at least one
        if done >= EVENTS:
            break
        try:
            msgs = await sub.fetch(BATCH, timeout=MAX_WAIT_S)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        tally = await run_batch(durable, js, msgs, handle, no_records)
        assert tally.retried == 0, "a batch was retried"
        assert tally.rejected == 0, "a batch had rejections"
        done += len(msgs)
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    await sub.unsubscribe()
    assert done == EVENTS
    return elapsed


def _pass_through() -> Any:
    async def handle(msgs: Sequence[Msg]) -> list[Outcome]:
        return [
            Forward(
                [
                    Outgoing(
                        f"passthru.{m.metadata.sequence.stream}",
                        m.data,
                        stage_msg_id("pass", (m.headers or {})["Nats-Msg-Id"]),
                    )
                ]
            )
            for m in msgs
        ]

    return handle


@asynccontextmanager
async def _fresh_database(admin_url: str) -> AsyncIterator[str]:
    name = f"bench_md_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        conn = await asyncpg.connect(url)
        await migrate(conn, "carebus_exceptions", load_migrations("carebus_shared.exceptions"))
        await migrate(conn, SCHEMA, load_migrations(PACKAGE))
        await conn.close()
        yield url
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _run(nats_url: str, db_url: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision(js, Topology(streams=TOPOLOGY.streams, consumers=()))
    await js.add_stream(name=PASS_STREAM, subjects=["passthru.>"], duplicate_window=120)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)

    records = _master_data()
    loaded = time.perf_counter()
    view = _warm_view(records)
    view_load_s = time.perf_counter() - loaded
    ready = asyncio.Event()
    ready.set()
    validator = Validator(view, ready, lambda: pool, ValidatorMetrics(CollectorRegistry()))

    async def validate(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        return await validator.handle("bench-validator", msgs)

    passes: list[tuple[float, float]] = []
    validations: list[tuple[float, float]] = []
    for round_ in range(ROUNDS):
        tag = f"{round_}{uuid.uuid4().hex[:4]}"
        first = await _load(js, _workload(tag, EVENTS))
        await _durable(js, f"pass-{tag}", first)
        await _durable(js, f"val-{tag}", first)
        if round_ % 2 == 0:
            passes.append(await _consume(js, f"pass-{tag}", _pass_through()))
            validations.append(await _consume(js, f"val-{tag}", validate))
        else:
            validations.append(await _consume(js, f"val-{tag}", validate))
            passes.append(await _consume(js, f"pass-{tag}", _pass_through()))

    validated = (await js.stream_info("VALIDATED")).state.messages
    async with pool.acquire() as conn:
        parked = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.parked_event")
    await pool.close()
    await nc.close()
    assert validated == EVENTS * ROUNDS, f"{validated} validated of {EVENTS * ROUNDS}"
    assert parked == 0

    pass_rate = statistics.median(EVENTS / wall for wall, _ in passes)
    pass_cpu = statistics.median(cpu / EVENTS * 1e6 for _, cpu in passes)
    validate_cpu = statistics.median(cpu / EVENTS * 1e6 for _, cpu in validations)
    validate_rate = statistics.median(EVENTS / wall for wall, _ in validations)
    return {
        "events_per_run": EVENTS,
        "rounds": ROUNDS,
        "batch_size": BATCH,
        "max_wait_ms": int(MAX_WAIT_S * 1000),
        "view_records": len(view),
        "view_load_ms": round(view_load_s * 1000),
        "pass_through_msgs_per_s": pass_rate,
        "validator_events_per_s": validate_rate,
        "validator_to_pass_through_ratio": validate_rate / pass_rate,
        "pass_through_client_cpu_us_per_msg": pass_cpu,
        "validator_client_cpu_us_per_event": validate_cpu,
        # What validation itself adds over consuming, publishing and acking (the handler's
        # own CPU: decode, lookups, Validated… built and encoded, the quarantine check).
        "validation_cpu_us_per_event": validate_cpu - pass_cpu,
    }


def test_validator_throughput_next_to_pass_through(database_url: str, tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        server = NatsServer(tmp_path / "nats")
        server.start()
        try:
            async with _fresh_database(database_url) as db_url:
                return await _run(server.url, db_url)
        finally:
            server.stop()

    figures = asyncio.run(main())
    report("validator", figures)
    assert figures["validator_events_per_s"] > 0
