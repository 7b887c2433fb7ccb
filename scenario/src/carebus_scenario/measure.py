"""Measuring a played scenario: end-to-end latency per journal, per-stage throughput, CPU and
peak memory of the processes involved.

Latency is *adapter accepted → ledger committed*: from the moment the adapter answered the
input (the player's clock) to the ``posted_at`` of the journal it caused (PostgreSQL's clock,
the same machine). Journals are joined to their input through the correlation id every
stage carries forward, which the adapters derive from the input (documented ids):
``hl7:<MSH-3>:<MSH-4>:<MSH-10>:<digest>`` (SIU), ``hl7:<MSH-3>^<MSH-4>:<MSH-10>`` (DFT),
``fhir:<source>:<id>:<versionId>`` (FHIR). 835 and CSV journals are not timed (their ids do
not name the input), which leaves about 70 % of the journals timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import statistics
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import nats
import psutil

from carebus_scenario.model import DFT, FHIR, SIU, AppointmentFact
from carebus_scenario.network import DFT_SOURCE, FHIR_SOURCE, SIU_SOURCE
from carebus_scenario.player import PlayReport
from carebus_shared.jetstream.connection import server_list
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY

PIPELINE_STAGES = tuple(
    (c.stream, c.durable, c.stage)
    for c in TOPOLOGY.pipeline_consumers
    if c.durable != EXCEPTION_CAPTURE
)


def acceptance_times(report: PlayReport) -> dict[str, float]:
    """Input id (as journals name their source) → when the adapter accepted it."""
    found: dict[str, float] = {}
    for sent in report.sent:
        delivery = sent.delivery
        if delivery.refusal is not None or not delivery.facts:
            continue
        fact = delivery.facts[0]
        if delivery.channel == SIU:
            control_id = fact.key.split(":", 1)[1]
            found[f"hl7:{SIU_SOURCE}:{fact.site}:{control_id}"] = sent.acked_at
        elif delivery.channel == DFT:
            control_id = fact.key.split(":")[1]
            found[f"hl7:{DFT_SOURCE}^{fact.site}:{control_id}"] = sent.acked_at
        elif delivery.channel == FHIR and isinstance(fact, AppointmentFact):
            _, appointment_id, version = fact.key.split(":")
            found[f"fhir:{FHIR_SOURCE}:{appointment_id}:{version}"] = sent.acked_at
    return found


def input_key(correlation_id: str) -> str:
    parts = correlation_id.split(":")
    if parts[0] == "hl7":
        return ":".join(parts[:3] if "^" in parts[1] else parts[:4])
    return correlation_id


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class Latency:
    timed: int
    journals: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # When the slowest 1 % were accepted: (seconds after ``origin``, rounded to 0.5 s;
    # how many), busiest first. A tail made by one stall shows as one moment.
    worst_1pct_at_s: tuple[tuple[float, int], ...] = ()


def worst_moments(
    points: list[tuple[float, float]], p99_ms: float, origin: float
) -> tuple[tuple[float, int], ...]:
    """(accepted at, latency ms) points → the moments the slowest 1 % were accepted at."""
    moments = Counter(round((at - origin) * 2) / 2 for at, ms in points if ms >= p99_ms)
    return tuple(moments.most_common(6))


async def journal_latency(
    database_url: str, since: dt.datetime, accepted: dict[str, float], origin: float = 0.0
) -> tuple[Latency, float]:
    """Latencies of the journals posted since ``since``; and when the last one committed.
    ``origin``: the clock the worst moments are counted from (default: the first accepted)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT correlation_id, posted_at FROM carebus_erp_poster.journal_entry "
            "WHERE posted_at >= $1",
            since,
        )
    finally:
        await conn.close()
    points = []
    last = since.timestamp()
    for row in rows:
        posted = row["posted_at"].timestamp()
        last = max(last, posted)
        at = accepted.get(input_key(row["correlation_id"]))
        if at is not None:
            points.append((at, max(0.0, (posted - at) * 1000)))
    values = [ms for _, ms in points]
    p99 = percentile(values, 99)
    start = origin or min((at for at, _ in points), default=0.0)
    latency = Latency(
        timed=len(values),
        journals=len(rows),
        p50_ms=percentile(values, 50),
        p95_ms=percentile(values, 95),
        p99_ms=p99,
        max_ms=max(values, default=float("nan")),
        worst_1pct_at_s=worst_moments(points, p99, start),
    )
    return latency, last


# -- processes ------------------------------------------------------------------------------
def postgres_pids(database_url: str) -> list[int]:
    """The postmaster serving ``database_url`` (its port on its command line)."""
    port = str(urllib.parse.urlsplit(database_url).port or 5432)
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and f"port={port}" in " ".join(cmd):
            found.append(proc.pid)
    return found


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU the process used so far; ``with_children`` adds its live and reaped children
    (PostgreSQL's backends come and go under the postmaster)."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total = times.user + times.system
        if with_children:
            total += times.children_user + times.children_system
            for child in proc.children():
                try:
                    child_times = child.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += child_times.user + child_times.system
        return float(total)
    except psutil.NoSuchProcess:
        return 0.0


def _status_kib(pid: int, field_name: str) -> int | None:
    """One ``Vm…`` line of /proc/<pid>/status, in KiB (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class RssSampler:
    """Resident memory (VmRSS) of named processes, sampled while a phase goes on: per process
    the peak and the steady (median) figure, in MiB. Processes that end are skipped."""

    pids: dict[str, int]
    interval_s: float = 0.25
    samples: dict[str, list[float]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():  # bounded by the caller's stop
            for name, pid in self.pids.items():
                kib = _status_kib(pid, "VmRSS:")
                if kib is not None:
                    self.samples.setdefault(name, []).append(kib / 1024)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def figures(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "peak_mib": round(max(values), 1),
                "steady_mib": round(statistics.median(values), 1),
                "samples": len(values),
            }
            for name, values in self.samples.items()
            if values
        }


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@dataclass
class CpuMeter:
    """CPU seconds of named processes between ``start()`` and ``stop()``."""

    pids: dict[str, int]
    grouped: set[str] = field(default_factory=set)  # names whose children count too
    _start: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {
            name: cpu_seconds(pid, with_children=name in self.grouped)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {name: max(0.0, end[name] - self._start.get(name, 0.0)) for name in end}


# -- stages ---------------------------------------------------------------------------------
@dataclass
class StageSampler:
    """Samples each pipeline consumer's acknowledged count while a run goes on."""

    nats_url: str
    interval_s: float = 0.5
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        nc = await nats.connect(server_list(self.nats_url))
        try:
            js = nc.jetstream()
            while not stop.is_set():
                now = time.monotonic()
                acked: dict[str, int] = {}
                for stream, durable, stage in PIPELINE_STAGES:  # partitions summed
                    info = await js.consumer_info(stream, durable)
                    floor = int(info.ack_floor.consumer_seq or 0) if info.ack_floor else 0
                    acked[stage] = acked.get(stage, 0) + floor
                for stage, count in acked.items():
                    self.samples.setdefault(stage, []).append((now, count))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            await nc.close()

    def spans(self, origin: float) -> dict[str, tuple[float, float, int]]:
        """Per stage: (first, last) moment its acknowledged count moved, in seconds after
        ``origin`` (``time.monotonic()``), and how many it acknowledged meanwhile."""
        found: dict[str, tuple[float, float, int]] = {}
        for durable, points in self.samples.items():
            if len(points) < 2 or points[-1][1] == points[0][1]:
                continue
            first = next(i for i, (_, n) in enumerate(points) if n != points[0][1])
            last_t = next(t for t, n in points if n == points[-1][1])
            found[durable] = (
                round(points[first][0] - origin, 1),
                round(last_t - origin, 1),
                points[-1][1] - points[0][1],
            )
        return found

    def rates(self) -> dict[str, float]:
        """Messages acknowledged per second while each stage was busy: from the last sample
        before its first acknowledgement to the first sample showing its last one."""
        found: dict[str, float] = {}
        for durable, points in self.samples.items():
            if len(points) < 2 or points[-1][1] == points[0][1]:
                continue
            first_change = next(i for i, (_, n) in enumerate(points) if n != points[0][1])
            start_t, start_n = points[first_change - 1]
            end_t, end_n = next(p for p in points if p[1] == points[-1][1])
            if end_t > start_t:
                found[durable] = (end_n - start_n) / (end_t - start_t)
        return found
