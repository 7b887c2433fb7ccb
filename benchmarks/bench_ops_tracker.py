"""`make bench`: the ops console's sync tracker on a burst (issue #21, docs/decisions/031).

An 835-like burst (per claim: the claim, a payment, an adjustment, their validated copies,
the claim's journal requested, posted and confirmed; plus a few appointments and charges)
is published once to a private NATS server; then the tracker's own durables read it all
into a fresh ``carebus_ops`` schema, twice: with the tracker as it was (every event decoded
into its full contract, one ack per message) and with the tracker as it is. Per variant:
events/s and the process's CPU-seconds per 1,000 events (the benchmark's process runs only
the consumers while measuring), and the ratio against the baseline of the same run.
``CAREBUS_BENCH_PROFILE=1`` also prints a cProfile of each variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import os
import pstats
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from benchmarks.bench_report import report
from carebus_contracts import billing as b
from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_contracts.registry import REGISTRY, ContractDecodeError, UnknownContractError
from carebus_ops.adapters import tracker_store
from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.domain.projection import Projection, Where
from carebus_ops.entrypoints import subscribers
from carebus_ops.handlers.track import Tracker
from carebus_shared.db.migrations import migrate_url
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.provision import consumer_config, provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import OPS_TRACKED_STREAMS, TOPOLOGY, ops_tracker
from tests.support.mapper import appointment, envelope, fresh_database, usd, validate
from tests.support.ops_console import charge_for, claim_for, journal_for

CLAIMS = int(os.environ.get("CAREBUS_BENCH_TRACKER_CLAIMS", "1500"))
BATCH = 500  # the console's default batch_size
TOP_UP_S = 0.05  # its default batch_max_wait_s
LINGER_S = float(os.environ.get("CAREBUS_BENCH_TRACKER_LINGER_S", "1.0"))  # default batch_linger_s
TRICKLE_PER_S = 2000  # events/s published while the tracker reads (the second pass)


def _unnest(table: str, columns: dict[str, str]) -> str:
    params = ", ".join(f"${n}::{t}[]" for n, t in enumerate(columns.values(), 1))
    return (
        f"INSERT INTO carebus_ops.{table} ({', '.join(columns)}) "
        f"SELECT * FROM unnest({params}) ON CONFLICT DO NOTHING"
    )


# The tables' columns and types, as the tracker writes them (the baseline writes the same).
_STEPS, _LINKS, _VISITS = (
    tracker_store._STEP_TYPES,
    tracker_store._LINK_TYPES,
    tracker_store._VISIT_TYPES,
)
_SOURCES = {"journal_id": "text", "source_event_id": "text"}


async def _store_as_before(conn: Any, projection: Projection) -> None:
    """The tracker's writes before issue #21: one typed array per column (``unnest``), for
    the tables the burst fills (it holds no exceptions and no locations)."""
    assert not projection.exceptions
    assert not projection.site_locations
    tables: list[tuple[str, dict[str, str], list[Any]]] = [
        ("step", _STEPS, projection.steps),
        ("link", _LINKS, sorted(set(projection.links), key=astuple)),
        ("visit", _VISITS, sorted(set(projection.visits), key=astuple)),
    ]
    for table, columns, rows in tables:
        if rows:
            arrays = [[getattr(row, name) for row in rows] for name in columns]
            await conn.execute(_unnest(table, columns), *arrays)
    if projection.journal_sources:
        pairs = sorted(set(projection.journal_sources))
        await conn.execute(
            _unnest("journal_source", _SOURCES), *map(list, zip(*pairs, strict=True))
        )


class BaselineTracker:
    """The tracker before issue #21 (kept here to measure against): every event decoded
    into its full contract, projected, stored with one array per column, then acked one
    message at a time; the next fetch at once, whatever the batch's size."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, stream: str, msgs: Sequence[Msg]) -> None:
        projection = Projection()
        for msg in msgs:
            try:
                event = REGISTRY.decode_message(msg.subject, msg.data, msg.headers)
            except (ContractDecodeError, UnknownContractError, ValueError):
                continue
            projection.add(event, Where(stream, int(msg.metadata.sequence.stream), msg.subject))
        async with self._pool.acquire() as conn, conn.transaction():
            await _store_as_before(conn, projection)
        for msg in msgs:
            await msg.ack()


def burst(claims: int, prefix: str = "") -> list[Event]:
    events: list[Event] = []
    for i in range(claims):
        n = f"{prefix}{i}"
        charge_id, claim_id = f"CH-{n}", f"CLM-{n}"
        claim = claim_for(claim_id, charge_id)
        payment = b.PaymentPosted(
            **envelope(f"PAY-{n}", f"PAY-{n}"),
            payment_id=f"PAY-{n}",
            claim_id=claim_id,
            amount=usd(8000),
            received_on=dt.date(2025, 4, 2),
        )
        adjustment = b.AdjustmentPosted(
            **envelope(f"ADJ-{n}", f"ADJ-{n}"),
            adjustment_id=f"ADJ-{n}",
            claim_id=claim_id,
            charge_id=charge_id,
            group_code=b.CarcGroup.CONTRACTUAL,
            reason_code="45",
            amount=usd(4500),
        )
        events += [claim, validate(claim), payment, validate(payment), adjustment]
        events += [validate(adjustment), *journal_for(f"J-{n}", claim.event_id)]
        if i % 10 == 0:  # the charges and appointments an 835 follows
            booked = appointment(s.AppointmentCompleted, f"A-{n}", 1)
            charge = charge_for(charge_id, f"A-{n}")
            events += [booked, validate(booked), charge, validate(charge)]
    return events


async def _publish(js: JetStreamContext, events: Sequence[Event]) -> None:
    for start in range(0, len(events), 1000):
        chunk = events[start : start + 1000]
        await publish_confirmed(
            js, [Outgoing(subject_for(e), encode(e), e.event_id, headers_for(e)) for e in chunk]
        )


async def _fresh_durables(js: JetStreamContext) -> int:
    pending = 0
    for stream in OPS_TRACKED_STREAMS:
        spec = TOPOLOGY.consumer(ops_tracker(stream))
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(spec.stream, spec.durable)
        await js.add_consumer(spec.stream, consumer_config(spec))
        info = await js.consumer_info(spec.stream, spec.durable)
        pending += int(info.num_pending or 0)
    return pending


OnBatch = Callable[[Sequence[Msg]], Awaitable[None]]


def _paced(url: str, events: Sequence[Event], stop: threading.Event) -> None:
    """Publish ``events`` at about TRICKLE_PER_S from a thread of its own (its CPU is not
    the tracker's), as a pipeline hands them over."""

    async def main() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            step = TRICKLE_PER_S // 20
            for start in range(0, len(events), step):
                if stop.is_set():
                    return
                await _publish(js, events[start : start + step])
                await asyncio.sleep(0.05)
        finally:
            await nc.close()

    asyncio.run(main())


async def _run(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    batches: Callable[[str, Callable[[int], None]], OnBatch],
    trickle: tuple[str, Sequence[Event]] | None = None,
) -> dict[str, float]:
    """Read a burst already on the streams from the start (``trickle`` None), or
    ``trickle``'s events as they are published at a steady rate; CPU of this thread."""
    if trickle is None:
        total = await _fresh_durables(js)
        async with pool.acquire() as conn:
            await tracker_store.truncate(conn)
    else:
        total = len(trickle[1])
    seen = 0

    done = asyncio.Event()

    def count(n: int) -> None:
        nonlocal seen
        seen += n
        if seen >= total:
            done.set()

    consumers = [
        StageConsumer(TOPOLOGY.consumer(ops_tracker(st)), batches(st, count), BATCH, TOP_UP_S)
        for st in OPS_TRACKED_STREAMS
    ]
    profile = cProfile.Profile() if os.environ.get("CAREBUS_BENCH_PROFILE") else None
    stop = threading.Event()
    publisher = None
    if trickle is not None:
        publisher = threading.Thread(target=_paced, args=(trickle[0], trickle[1], stop))
        publisher.start()
    cpu, wall = time.thread_time(), time.perf_counter()
    if profile:
        profile.enable()
    for consumer in consumers:
        consumer.start(lambda: js)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 600)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if profile:
        profile.disable()
    stop.set()
    await asyncio.gather(*(c.stop(5.0) for c in consumers))
    if publisher is not None:
        await asyncio.to_thread(publisher.join)
    assert seen == total, f"read {seen} of {total}"
    steps, links = await _rows(pool)
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return {
        "events": total,
        "events_per_s": total / wall,
        "cpu_ms_per_1000": cpu * 1e6 / total,
        "steps": steps,
        "links": links,
    }


def _baseline(pool: asyncpg.Pool) -> Callable[[str, Callable[[int], None]], OnBatch]:
    tracker = BaselineTracker(pool)

    def batches(stream: str, count: Callable[[int], None]) -> OnBatch:
        async def on_batch(msgs: Sequence[Msg]) -> None:
            await tracker.handle(stream, msgs)
            count(len(msgs))

        return on_batch

    return batches


class _Counted(Tracker):
    def __init__(self, pool: asyncpg.Pool, count: Callable[[int], None]) -> None:
        super().__init__(lambda: pool, OpsMetrics(CollectorRegistry()))
        self._count = count

    async def handle(self, stream: str, msgs: Sequence[Msg]) -> None:
        await super().handle(stream, msgs)
        self._count(len(msgs))  # stored and acked; the linger comes after


def _current(pool: asyncpg.Pool) -> Callable[[str, Callable[[int], None]], OnBatch]:
    def batches(stream: str, count: Callable[[int], None]) -> OnBatch:
        return subscribers.tracker_batches(_Counted(pool, count), stream, BATCH, LINGER_S)

    return batches


def _best(one: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    return min(one, other, key=lambda run: run["cpu_ms_per_1000"])


async def _rows(pool: asyncpg.Pool) -> tuple[int, int]:
    async with pool.acquire() as conn:
        steps = await conn.fetchval("SELECT count(*) FROM carebus_ops.step")
        links = await conn.fetchval("SELECT count(*) FROM carebus_ops.link")
    return int(steps), int(links)


async def _bench(tmp: Path, database_url: str) -> dict[str, Any]:
    server = NatsServer(tmp / "nats")
    server.start()
    nc = await nats.connect(server.url)
    figures: dict[str, Any] = {}
    try:
        js = nc.jetstream()
        await provision(js, TOPOLOGY)
        await _publish(js, burst(CLAIMS))
        async with fresh_database(database_url) as db_url:
            await migrate_url(db_url, "carebus_ops", "carebus_ops")
            pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
            try:
                # Each twice, in turn (B, A, A, B): the better of the two, so neither
                # gains from going first or last on a busy machine.
                runs: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
                burst_runs = [
                    await _run(js, pool, _baseline(pool)),
                    await _run(js, pool, _current(pool)),
                    await _run(js, pool, _current(pool)),
                    await _run(js, pool, _baseline(pool)),
                ]
                runs["burst"] = (_best(burst_runs[0], burst_runs[3]), _best(*burst_runs[1:3]))
                before_rows = await _rows(pool)
                trickle_runs = [
                    await _run(js, pool, variant(pool), (server.url, burst(CLAIMS, prefix)))
                    for variant, prefix in (
                        (_baseline, "b1-"), (_current, "a1-"), (_current, "a2-"), (_baseline, "b2-")
                    )
                ]  # fmt: skip
                runs["trickle"] = (
                    _best(trickle_runs[0], trickle_runs[3]), _best(*trickle_runs[1:3])
                )  # fmt: skip
                after_rows = await _rows(pool)
            finally:
                await pool.close()
    finally:
        await nc.close()
        server.stop()
    burst_rows = {run["steps"] for run in burst_runs}, {run["links"] for run in burst_runs}
    assert all(len(rows) == 1 for rows in burst_rows), burst_rows  # the same rows every time
    steps, links = (rows.pop() for rows in burst_rows)
    # Each trickle adds as many rows as the burst holds.
    assert (after_rows[0] - before_rows[0], after_rows[1] - before_rows[1]) == (
        4 * steps, 4 * links,
    )  # fmt: skip
    figures["events_per_run"] = burst_runs[0]["events"]
    figures["rows_per_run"] = f"{steps} steps, {links} links"
    for name, (before, after) in runs.items():
        figures[f"{name}_before_events_per_s"] = before["events_per_s"]
        figures[f"{name}_after_events_per_s"] = after["events_per_s"]
        figures[f"{name}_before_cpu_ms_per_1000_events"] = before["cpu_ms_per_1000"]
        figures[f"{name}_after_cpu_ms_per_1000_events"] = after["cpu_ms_per_1000"]
        ratio = after["cpu_ms_per_1000"] / before["cpu_ms_per_1000"]
        figures[f"{name}_cpu_after_to_before"] = f"{ratio:.2f}"
    return figures


def test_ops_tracker_burst(tmp_path: Path, database_url: str) -> None:
    figures = asyncio.run(_bench(tmp_path, database_url))
    report("ops_tracker", figures)
