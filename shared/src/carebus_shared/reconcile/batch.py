"""One reconciliation run (read, compare, keep), and the run on a schedule.

A run reconciles whole days: it reads the streams from the start of its first day (minus
``lookback``, for events recorded before their business day), the ledger for those days and
the journals their events asked for, compares, and keeps the results. On a schedule it runs
every ``interval`` over the last ``days`` days until SIGTERM/SIGINT (or ``max_runs``), serving
the metrics of the latest run on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from carebus_shared.jetstream.connection import connect as connect_nats
from carebus_shared.reconcile import readers, store
from carebus_shared.reconcile.domain import SiteDay, Timing, reconcile
from carebus_shared.reconcile.exporter import serving_metrics
from carebus_shared.reconcile.metrics import ReconcileMetrics
from carebus_shared.runtime.metrics import new_registry

log = logging.getLogger("carebus.reconcile")


@dataclass(frozen=True)
class Job:
    days: tuple[dt.date, ...]
    site: str | None = None
    settle: dt.timedelta = dt.timedelta(minutes=15)
    charge_lag: dt.timedelta = dt.timedelta(days=1)
    lookback: dt.timedelta = dt.timedelta(days=1)
    keep: bool = True
    keep_runs_for: dt.timedelta = dt.timedelta(days=90)

    @property
    def since(self) -> dt.datetime:
        start = dt.datetime.combine(min(self.days), dt.time(), tzinfo=dt.UTC)
        return start - self.lookback


@dataclass
class Run:
    results: list[SiteDay]
    registered_sites: frozenset[str]
    undecodable: dict[str, int] = field(default_factory=dict)
    run_id: int | None = None
    seconds: float = 0.0

    @property
    def unexplained(self) -> int:
        return sum(r.unexplained for r in self.results)


def last_days(today: dt.date, count: int) -> tuple[dt.date, ...]:
    return tuple(today - dt.timedelta(days=n) for n in reversed(range(count)))


async def _connection_error(exc: Exception) -> None:
    """nats-py prints a traceback by default; a failed run is reported by the caller."""
    log.debug("nats connection error", extra={"error": type(exc).__name__})


async def run_once(nats_url: str, database_url: str, job: Job) -> Run:
    """Reconcile ``job``'s days; raises on anything it cannot read or store."""
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    nc = await connect_nats(
        nats_url,
        connect_timeout=5,
        max_reconnect_attempts=3,
        reconnect_time_wait=1,
        error_cb=_connection_error,
    )
    try:
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            read = await readers.read_all(nc, conn, job.days, job.site, job.since)
            timing = Timing(dt.datetime.now(dt.UTC), job.settle, job.charge_lag)
            sites = [job.site] if job.site else None
            results = reconcile(read.views, job.days, timing, sites)
            run = Run(results, read.registered_sites, dict(read.undecodable.by_stream))
            if job.keep:
                await store.migrate_store(conn)
                finished = dt.datetime.now(dt.UTC)
                run.run_id = await store.keep(conn, started, finished, job.days, job.site, results)
                await store.prune(conn, finished - job.keep_runs_for)
        finally:
            await conn.close()
    finally:
        await nc.close()
    run.seconds = time.monotonic() - clock
    return run


def _stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def restore() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    return restore


async def run_every(
    nats_url: str,
    database_url: str,
    job_for: Callable[[dt.date], Job],
    interval: dt.timedelta,
    *,
    metrics_host: str,
    metrics_port: int,
    max_runs: int | None = None,
) -> int:
    """Run at once, then every ``interval``, until SIGTERM/SIGINT or ``max_runs`` runs; a
    failed run is logged (its error's type, never data) and the next one comes on time."""
    registry = new_registry()
    metrics = ReconcileMetrics(registry)
    stop = asyncio.Event()
    restore = _stop_on_signals(stop)
    runs = 0
    try:
        async with serving_metrics(database_url, metrics_host, metrics_port, registry) as port:
            log.info("serving metrics", extra={"port": port})
            while not stop.is_set() and (max_runs is None or runs < max_runs):
                runs += 1
                await _scheduled_run(nats_url, database_url, job_for, metrics)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval.total_seconds()):
                        await stop.wait()
    finally:
        restore()
    log.info("stopped", extra={"runs": runs})
    return 0


async def _scheduled_run(
    nats_url: str,
    database_url: str,
    job_for: Callable[[dt.date], Job],
    metrics: ReconcileMetrics,
) -> None:
    job, clock = job_for(dt.datetime.now(dt.UTC).date()), time.monotonic()
    try:
        run = await run_once(nats_url, database_url, job)
    except Exception as exc:  # the next run comes on time; the error is logged by type only
        log.error("reconciliation failed", extra={"error": type(exc).__name__})
        metrics.failed(time.time(), time.monotonic() - clock)
        return
    metrics.succeeded(run.results, run.registered_sites, time.time(), run.seconds)
    log.info(
        "reconciled",
        extra={
            "first_day": min(job.days).isoformat(), "last_day": max(job.days).isoformat(),
            "site_days": len(run.results), "unexplained": run.unexplained,
            "explained": sum(r.explained for r in run.results), "run_id": run.run_id,
            "seconds": round(run.seconds, 3),
            "undecodable": sum(run.undecodable.values()),
        },
    )  # fmt: skip


def summary(run: Run, days: Sequence[dt.date]) -> str:
    """One line about a run, for the end of the report (no ids: counts only)."""
    undecodable = sum(run.undecodable.values())
    parts = [
        f"{len(run.results)} site-day(s) of {min(days)}..{max(days)}",
        f"{run.unexplained} unexplained",
        f"{sum(r.explained for r in run.results)} explained",
        f"{run.seconds:.2f} s",
    ]
    if undecodable:
        parts.append(f"{undecodable} undecodable message(s) skipped")
    if run.run_id is not None:
        parts.append(f"kept as run {run.run_id}")
    return "reconciled " + ", ".join(parts)
