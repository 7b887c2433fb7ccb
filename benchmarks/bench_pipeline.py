"""`make bench`: the whole pipeline, end to end, against the raw four-hop baseline.

The five services run as their own processes (as `carebus run` starts them) on a private
NATS server and a fresh database; the scenario player sends a 40-site network's day through
the adapters' real entry points (MLLP, HTTP, inbox folder, CSV import).

1. Raw baseline (``raw_hops``: four nats-py hops, one process each, no processing) with the
   same number of events, flat out, before and after the pipeline runs (the machine is
   shared: the mean of the two is the reference), and at 500 events/s; with the NATS
   server's CPU, so that CPU per event compares with the pipeline's, everything included.
2. The full scenario flat out: sustained events/s from the first input sent to the last
   journal committed, latency (adapter accepted → ledger committed), per-stage throughput,
   CPU seconds per 1,000 events, and whether the ledger equals the oracle.
3. The same at fixed offered rates (200, 500, 1,000, 2,000 events/s): latency per rate.
4. Catch-up: mapper and poster stopped (SIGTERM), a 100,000-event scenario played and
   validated, then both started again: the time until the ledger has everything.

Figures go to .data/bench/latest.json (and pipeline.json), a markdown table latest.md and
a PNG of latency against offered load (``latency_plot``, matplotlib).
``CAREBUS_BENCH_BACKLOG`` (events, default 100000) and ``CAREBUS_BENCH_RATE_SECONDS``
(seconds of load per fixed rate, default 20) scale it down on slow machines;
``CAREBUS_BENCH_PROFILE=1`` samples every service with py-spy during the flat-out run.

5. Memory: every service's resident set (VmRSS), peak and steady, idle, at 500 events/s and
   while the backlog drains; and each one's lifetime peak (VmHWM).
6. Bulk inputs: a 10,000-claim 835 file (uploaded → every journal committed) and a
   100,000-row CSV export (``carebus-scheduling import``), each timed (``bulk_inputs``).
7. Shutdown: under load (500 events/s offered), each service in turn gets SIGTERM; the time
   until it exited.

Everything runs twice, each time on a NATS server of its own: first with
``sync_interval: always`` (fsync every write), as the dev stack, compose and the manifests
run it — the headline, the keys of latest.json — then with the server's default (fsync every
two minutes), kept beside it under ``default_sync``. The raw baseline runs on the same server
as the pipeline it is compared with (docs/decisions/013): compare ratios, not absolute rates.
``CAREBUS_BENCH_SYNCS`` (default ``always,default``) picks the runs; ``CAREBUS_BENCH_835_CLAIMS``
and ``CAREBUS_BENCH_CSV_ROWS`` scale the bulk inputs.

``CAREBUS_BENCH_ONLY=bulk`` runs the bulk inputs alone (``test_bulk_inputs``, a few minutes):
first the two adapters alone, no stage consuming (answer time, CPU of adapter, import and
NATS, RSS; with ``CAREBUS_BENCH_PROFILE=1`` py-spy profiles of the billing adapter and of the
import command), then (unless ``CAREBUS_BENCH_BULK_PIPELINE=0``) the whole pipeline with each
stage's span; figures in .data/bench/bulk.json (docs/decisions/031).
``CAREBUS_BENCH_BULK_INTAKE=0`` skips the adapters-alone part, ``CAREBUS_BENCH_BULK_FILES=
remittance_835`` runs the 835 alone. Each whole-pipeline run reports PostgreSQL's CPU by
client service (its backends, matched by their connections' ports) and, when the tests'
PostgreSQL was started with ``CAREBUS_PG_STAT_STATEMENTS=1``, its costliest statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import uvloop

from benchmarks.bench_report import BENCH_DIR, report
from benchmarks.bulk_inputs import csv_export, opening_and_file, remittance_file
from benchmarks.latency_plot import latency_vs_load
from benchmarks.raw_hops import run as raw_run
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.measure import (
    CpuMeter,
    RssSampler,
    StageSampler,
    acceptance_times,
    journal_latency,
    peak_rss_mb,
    postgres_pids,
)
from carebus_scenario.model import CSV, X12_INBOX, X12_UPLOAD
from carebus_scenario.observe import backlog, observe, wait_quiet
from carebus_scenario.oracle import expect
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.stack import ServiceStack, fresh_database, provision_stack
from carebus_scenario.verify import differences
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.postgres_server import PostgresServer
from carebus_shared.jetstream.topology import MAPPER, VALIDATOR_BILLING, VALIDATOR_SCHEDULING
from tests.support import auth

RATES = (200, 500, 1000, 2000)
RATE_SECONDS = float(os.environ.get("CAREBUS_BENCH_RATE_SECONDS", "20"))
BACKLOG_EVENTS = int(os.environ.get("CAREBUS_BENCH_BACKLOG", "100000"))
FLAT_OUT_EVENTS = int(os.environ.get("CAREBUS_BENCH_EVENTS", "16800"))  # the 40-site day
PROFILE = os.environ.get("CAREBUS_BENCH_PROFILE") == "1"
# "always": fsync every write (the headline); "default": the server's own (every two minutes).
SYNCS = tuple(os.environ.get("CAREBUS_BENCH_SYNCS", "always,default").split(","))
REMITTANCE_CLAIMS = int(os.environ.get("CAREBUS_BENCH_835_CLAIMS", "10000"))
CSV_ROWS = int(os.environ.get("CAREBUS_BENCH_CSV_ROWS", "100000"))
IDLE_SECONDS = 3.0
SITES = 40
EVENTS_PER_VISIT = 7.0  # what the default mix yields per visit of the day (measured)
REMITTANCE_SITE = "CBO"


def scenario_for(events: int, seed: int) -> Scenario:
    per_site = max(2, round(events / (EVENTS_PER_VISIT * SITES)))
    config = ScenarioConfig(
        seed=seed, sites=SITES, appointments_per_site=per_site, remittance_site=REMITTANCE_SITE
    )
    return generate(config)


def _pids(stack: ServiceStack, nats: NatsServer, database_url: str) -> dict[str, int]:
    pids = {name: stack.pid(name) for name in stack.processes}
    assert nats._process is not None
    pids["nats-server"] = nats._process.pid
    for n, pid in enumerate(postgres_pids(database_url)):
        pids["postgres" if n == 0 else f"postgres-{n}"] = pid
    return pids


class Profiler:
    """py-spy sampling of every service while a run goes on (when py-spy is installed)."""

    def __init__(self, pids: dict[str, int], out: Path) -> None:
        self.binary = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.pids, self.out = pids, out
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        if not (PROFILE and self.binary):
            return
        for name, pid in self.pids.items():
            if name in ("nats-server",) or name.startswith("postgres"):
                continue
            path = self.out / f"profile-{name}.raw"
            self.procs[name] = subprocess.Popen(
                [self.binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
                 "--nonblocking", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self) -> dict[str, dict[str, Any]]:
        """Per service: own time by frame and by library, from py-spy's collapsed stacks
        (idle threads excluded)."""
        tops: dict[str, dict[str, Any]] = {}
        for name, proc in self.procs.items():
            proc.send_signal(signal.SIGINT)  # py-spy writes what it has sampled
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            path = self.out / f"profile-{name}.raw"
            if path.exists():
                tops[name] = _profile_summary(path.read_text(errors="replace"))
                (self.out / f"profile-{name}.json").write_text(json.dumps(tops[name], indent=1))
        return tops


def _backends(pids: dict[str, int]) -> dict[int, tuple[str, float]]:
    """PostgreSQL's backends by the service on the other end of their connection (its local
    port), else by their process title (the bench's own connections, the background workers):
    backend pid → (who, CPU seconds so far)."""
    by_port: dict[int, str] = {}
    for name, pid in pids.items():
        if name == "nats-server" or name.startswith("postgres"):
            continue
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                by_port[conn.laddr.port] = name
    found: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(psutil.Error, KeyError):
        for child in psutil.Process(pids["postgres"]).children():
            with contextlib.suppress(psutil.Error):
                title = " ".join(child.cmdline())
                port = re.search(r"\((\d+)\)", title)
                who = by_port.get(int(port.group(1))) if port else None
                words = title.split()
                label = who or ("bench" if port else (words[1] if len(words) > 1 else title))
                times = child.cpu_times()
                found[child.pid] = (f"pg:{label}", times.user + times.system)
    return found


def backend_cpu(before: dict[int, tuple[str, float]], pids: dict[str, int]) -> dict[str, float]:
    """PostgreSQL CPU seconds since ``before`` per client service (docs/decisions/031)."""
    spent: Counter[str] = Counter()
    for pid, (who, cpu) in _backends(pids).items():
        spent[who] += cpu - before.get(pid, (who, 0.0))[1]
    return {who: round(cpu, 2) for who, cpu in spent.most_common()}


# With CAREBUS_PG_STAT_STATEMENTS=1 the tests' PostgreSQL loads pg_stat_statements.
STATEMENTS = os.environ.get("CAREBUS_PG_STAT_STATEMENTS") == "1"


async def statements(database_url: str, *, reset: bool = False) -> list[tuple[Any, ...]]:
    """PostgreSQL's costliest statements since the last reset (when it tracks them)."""
    if not STATEMENTS:
        return []
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await conn.fetch(
            "SELECT calls, round(total_exec_time)::bigint AS ms, rows,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query"
            " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25"
        )
        return [(r["ms"], r["calls"], r["rows"], r["query"]) for r in rows]
    finally:
        await conn.close()


def _library(frame: str) -> str:
    """py-spy names frames "function (package/module.py:line)": the package, or "other"."""
    found = re.search(r"\(([^/()]+)/", frame)
    return found.group(1) if found else "other"


def _profile_summary(collapsed: str) -> dict[str, Any]:
    """Own time per frame and per library (where the CPU is actually spent)."""
    own: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = re.sub(r":\d+\)$", ")", stack.split(";")[-1])
        own[leaf] += n
        by_library[_library(leaf)] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "own_time_by_library": {k: round(v / total, 3) for k, v in by_library.most_common()},
        "own_time": [(f, round(c / total, 3)) for f, c in own.most_common(15)],
    }


async def measure(
    stack: ServiceStack,
    scenario: Scenario,
    rate: float | None,
    workdir: Path,
    pids: dict[str, int],
    profiler: Profiler | None = None,
    rss: RssSampler | None = None,
    prelude: Scenario | None = None,
) -> dict[str, Any]:
    """``prelude``: inputs sent and settled first, untimed (the ledger is checked against
    the oracle of both)."""
    endpoints = stack.endpoints
    whole = scenario
    if prelude is not None:
        whole = Scenario(
            scenario.config, scenario.network, prelude.deliveries + scenario.deliveries
        )
    expected = expect(whole)
    await load_masterdata(scenario.network, endpoints.validator_http)
    since = dt.datetime.now(dt.UTC)
    if prelude is not None:
        await Player(prelude, endpoints, workdir, connections=16).play()
        await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=900, since=since)
    cpu = CpuMeter(pids, grouped={name for name in pids if name.startswith("postgres")})
    cpu.start()
    backends = _backends(pids)
    await statements(endpoints.database_url, reset=True)
    own_cpu = time.process_time()  # this process: the scenario player and the sampling
    sampler = StageSampler(endpoints.nats_url)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    memory = asyncio.create_task(rss.run(stop)) if rss is not None else None
    if profiler is not None:
        profiler.start()
    player = Player(scenario, endpoints, workdir, rate=rate, connections=16)
    origin = time.monotonic()
    played = await player.play()
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=900, since=since)
    stop.set()
    await sampling
    if memory is not None:
        await memory
    used = cpu.stop()
    postgres_by_client = backend_cpu(backends, pids)
    top_statements = await statements(endpoints.database_url)
    player_cpu_s = time.process_time() - own_cpu
    everything_cpu_s = sum(used.values()) + player_cpu_s
    latency, last_commit = await journal_latency(
        endpoints.database_url, since, acceptance_times(played), origin=played.started_at
    )
    observed = await observe(
        endpoints.database_url, endpoints.validator_http, endpoints.nats_url, since
    )
    problems = differences(expected, observed, check_streams=False)
    events = sum(expected.stream_events.values())  # distinct events the adapters accepted
    window = max(0.001, last_commit - played.started_at)
    intake = max(0.001, played.finished_at - played.started_at)
    result: dict[str, Any] = {
        "offered_per_s": rate,
        "events": events,
        "events_offered": scenario.events,
        "inputs": len(played.sent),
        "journals": observed.entry_count,
        "intake_events_per_s": scenario.events / intake,
        "events_per_s": events / window,
        "journals_per_s": observed.entry_count / window,
        "seconds": window,
        "latency": asdict(latency),
        # Files land many events at once, ahead of real-time inputs in the same streams:
        # (seconds after the start, channel, events), to read beside the worst moments.
        "file_inputs": [
            (round(s.acked_at - played.started_at, 1), s.delivery.channel, len(s.delivery.facts))
            for s in played.sent
            if s.delivery.channel in (CSV, X12_UPLOAD, X12_INBOX)
        ],
        # Per file: (channel, events, seconds from sending it to the adapter's answer, answer).
        "file_answers": [
            (s.delivery.channel, len(s.delivery.facts), round(s.acked_at - s.sent_at, 2), s.answer)
            for s in played.sent
            if s.delivery.channel in (CSV, X12_UPLOAD, X12_INBOX)
        ],
        "stage_msgs_per_s": sampler.rates(),
        # Per stage: (first, last) second it acknowledged something after sending began, count.
        "stage_spans": sampler.spans(origin),
        "cpu_s": used,
        "postgres_cpu_s_by_client": postgres_by_client,
        "postgres_top_statements": top_statements,
        "cpu_s_per_1000_events": sum(used.values()) / events * 1000,
        "services_cpu_s_per_1000_events": sum(
            v for k, v in used.items() if k != "nats-server" and not k.startswith("postgres")
        )
        / events
        * 1000,
        "load_generator_cpu_s": round(player_cpu_s, 2),
        # Everything on the machine, the load generator included, as the baseline counts it.
        "all_cpu_s_per_1000_events": everything_cpu_s / events * 1000,
        "cores_busy": everything_cpu_s / window,
        "ledger_equals_oracle": not problems,
        "differences": problems[:10],
        "unexpected_answers": played.surprises[:10],
    }
    if profiler is not None:
        result["profile_top_frames"] = profiler.stop()
    return result


async def backlog_catch_up(
    stack: ServiceStack, workdir: Path, peaks: dict[str, float]
) -> dict[str, Any]:
    endpoints = stack.endpoints
    scenario = scenario_for(BACKLOG_EVENTS, seed=99)
    expected = expect(scenario)
    await load_masterdata(scenario.network, endpoints.validator_http)
    for name in ("mapper", "erp-poster"):
        peaks[name] = max(peaks.get(name, 0.0), peak_rss_mb(stack.pid(name)))
        stack.terminate(name)
    since = dt.datetime.now(dt.UTC)
    played = await Player(scenario, endpoints, workdir, connections=16).play()
    for _ in range(3600):  # the validator finishes what was accepted (bounded: 30 min)
        pending = await backlog(endpoints.nats_url)
        if not pending[VALIDATOR_SCHEDULING] and not pending[VALIDATOR_BILLING]:
            break
        await asyncio.sleep(0.5)
    waiting = (await backlog(endpoints.nats_url))[MAPPER]
    started = time.time()
    await asyncio.to_thread(stack.start, ["mapper", "erp-poster"])
    ready = time.time()
    rss = RssSampler(_service_pids(stack))
    stop = asyncio.Event()
    memory = asyncio.create_task(rss.run(stop))
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=1800, since=since)
    stop.set()
    await memory
    _, last_commit = await journal_latency(endpoints.database_url, since, {})
    observed = await observe(
        endpoints.database_url, endpoints.validator_http, endpoints.nats_url, since
    )
    problems = differences(expected, observed, check_streams=False)
    return {
        "events": sum(expected.stream_events.values()),
        "intake_s": played.finished_at - played.started_at,
        "validated_waiting": waiting,
        "journals": observed.entry_count,
        "drain_s_from_start": last_commit - started,
        "drain_s_from_ready": last_commit - ready,
        "drain_events_per_s": waiting / max(0.001, last_commit - ready),
        "ledger_equals_oracle": not problems,
        "differences": problems[:10],
        "rss": rss.figures(),
    }


def _service_pids(stack: ServiceStack) -> dict[str, int]:
    return {name: stack.pid(name) for name, p in stack.processes.items() if p.poll() is None}


async def idle_memory(stack: ServiceStack) -> dict[str, dict[str, float]]:
    """Every service's resident set while nothing is sent (just after start-up)."""
    rss = RssSampler(_service_pids(stack))
    stop = asyncio.Event()
    task = asyncio.create_task(rss.run(stop))
    await asyncio.sleep(IDLE_SECONDS)
    stop.set()
    await task
    return rss.figures()


def _hwm_mib(stack: ServiceStack) -> dict[str, float]:
    return {name: round(peak_rss_mb(pid), 1) for name, pid in _service_pids(stack).items()}


async def bulk_file(
    stack: ServiceStack,
    scenario: Scenario,
    workdir: Path,
    pids: dict[str, int],
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    """One big input alone: how long until the adapter accepted it, and until its last
    journal committed (both from the moment it was sent)."""
    rss = RssSampler(_service_pids(stack))
    prelude = None
    if scenario.deliveries[-1].channel == X12_UPLOAD and len(scenario.deliveries) > 1:
        prelude, scenario = opening_and_file(scenario)
    run = await measure(stack, scenario, None, workdir, pids, profiler, rss, prelude)
    [(_, _, answered_s, answer)] = run["file_answers"]
    return {
        "events": len(scenario.deliveries[0].facts),
        "rss": rss.figures(),
        "stage_spans": run["stage_spans"],
        "profile_top_frames": run.get("profile_top_frames"),
        "journals": run["journals"],
        "answer": answer,
        "accepted_s": answered_s,
        "committed_s": round(run["seconds"], 2),
        "events_per_s": round(run["events_per_s"], 1),
        "cpu_s": run["cpu_s"],
        "postgres_cpu_s_by_client": run["postgres_cpu_s_by_client"],
        "postgres_top_statements": run["postgres_top_statements"],
        "ledger_equals_oracle": run["ledger_equals_oracle"],
        "differences": run["differences"],
    }


# Downstream first, so every stage still has work coming while it is stopped.
SHUTDOWN_ORDER = (
    "erp-poster",
    "mapper",
    "masterdata-validator",
    "ops-console",
    "billing-adapter",
    "scheduling-adapter",
)


async def shutdown_under_load(stack: ServiceStack, workdir: Path) -> dict[str, float]:
    """500 events/s offered; after a few seconds each service in turn gets SIGTERM: seconds
    until it exited. The stack is gone afterwards."""
    scenario = scenario_for(20_000, seed=77)
    await load_masterdata(scenario.network, stack.endpoints.validator_http)
    stopped = False
    player = Player(
        scenario, stack.endpoints, workdir, rate=500.0, connections=16,
        should_stop=lambda: stopped,
    )  # fmt: skip
    playing = asyncio.create_task(player.play())
    await asyncio.sleep(5.0)
    seconds: dict[str, float] = {}
    for name in SHUTDOWN_ORDER:
        if name not in stack.processes:
            continue
        started = time.perf_counter()
        code = await asyncio.to_thread(stack.terminate, name)
        seconds[name] = round(time.perf_counter() - started, 2)
        if code != 0:
            seconds[f"{name}_exit_code"] = code
        await asyncio.sleep(1.0)
    stopped = True
    with contextlib.suppress(Exception):  # its adapters are gone: the player gives up
        await asyncio.wait_for(playing, 60)
    return seconds


async def baseline(nats: NatsServer, events: int, rate: float | None = None) -> dict[str, Any]:
    """The raw four hops, with the NATS server's CPU beside the hops' own: the pipeline's
    CPU figure counts the server too, so the two compare per event, everything included."""
    assert nats._process is not None
    server = CpuMeter({"nats-server": nats._process.pid})
    server.start()
    figures = asdict(await raw_run(nats.url, events, rate=rate))
    figures["nats_cpu_s_per_1000"] = server.stop()["nats-server"] / events * 1000
    figures["all_cpu_s_per_1000"] = figures["cpu_s_per_1000"] + figures["nats_cpu_s_per_1000"]
    figures["cores_busy"] = figures["all_cpu_s_per_1000"] / 1000 * figures["events_per_s"]
    return figures


# The targets (issue 21) for a two-core machine with everything on it, each a ratio to the
# raw four hops in the same run and the same sync setting, or an absolute bound:
# (label, key, met, format).
TARGETS: tuple[tuple[str, str, Callable[[float], bool], str], ...] = (
    ("throughput, ratio to the raw four hops (≥ 0.8)", "ratio_to_baseline",
     lambda v: v >= 0.8, "{:.2f}"),
    ("p99 at 500 events/s, ratio to the raw hops' (≤ 2)", "p99_ratio_at_500",
     lambda v: v <= 2.0, "{:.2f}"),
    ("backlog drain rate, ratio to the raw flat-out rate (≈ 0.98, keep)", "backlog_drain_ratio",
     lambda v: v >= 0.9, "{:.2f}"),
    ("largest service RSS at 500/s and through the drain, MiB (< 150)", "max_rss_mib",
     lambda v: v < 150, "{:,.0f}"),
    ("10,000-claim 835, sent → every journal committed, s (≤ 10)", "remittance_835_s",
     lambda v: v <= 10, "{:,.1f}"),
    ("100,000-row CSV imported, s (≤ 60)", "csv_import_s", lambda v: v <= 60, "{:,.1f}"),
)  # fmt: skip


def targets_table(figures: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | met |", "| --- | ---: | :---: |"]
    for label, key, met, shown in TARGETS:
        value = figures[key]
        lines.append(f"| {label} | {shown.format(value)} | {'yes' if met(value) else 'NO'} |")
    lines.append(
        f"\nThe raw four hops ran at {figures['baseline_events_per_s']:,.0f} events/s here "
        f"(p99 {figures['baseline_at_500']['p99_ms']:,.0f} ms at 500/s): absolute figures "
        "scale with the machine and the sync setting, the ratios are the ones to compare."
    )
    return [*lines, ""]


def markdown(figures: dict[str, Any]) -> str:
    lines = [
        *targets_table(figures),
        "| run | offered events/s | events | sustained events/s | p50 ms | p95 ms | p99 ms "
        "| CPU s / 1,000 events | ledger = oracle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for run in figures["runs"]:
        lat = run["latency"]
        offered = "max" if run["offered_per_s"] is None else f"{run['offered_per_s']:,.0f}"
        verdict = "yes" if run["ledger_equals_oracle"] else "NO"
        lines.append(
            f"| pipeline | {offered} | {run['events']:,} | {run['events_per_s']:,.0f} "
            f"| {lat['p50_ms']:,.0f} | {lat['p95_ms']:,.0f} | {lat['p99_ms']:,.0f} "
            f"| {run['cpu_s_per_1000_events']:.2f} | {verdict} |"
        )
    for name in ("baseline_before", "baseline_after", "baseline_at_500"):
        base = figures[name]
        offered = "max" if base["offered_per_s"] is None else f"{base['offered_per_s']:,.0f}"
        lines.append(
            f"| raw 4 hops ({name.removeprefix('baseline_')}) | {offered} | {base['events']:,} "
            f"| {base['events_per_s']:,.0f} | {base['p50_ms']:,.0f} | {base['p95_ms']:,.0f} "
            f"| {base['p99_ms']:,.0f} | {base['cpu_s_per_1000']:.2f} | |"
        )
    b = figures["backlog"]
    at_500 = next(r for r in figures["runs"] if r["offered_per_s"] == 500)
    lines += [
        "",
        f"- sustained end to end: **{figures['events_per_s']:,.0f} events/s**, raw baseline "
        f"{figures['baseline_events_per_s']:,.0f}/s, ratio **{figures['ratio_to_baseline']:.2f}**",
        _cpu_line(figures),
        f"- p99 at 500 events/s: **{figures['p99_ms_at_500']:,.0f} ms**; the slowest 1 % were "
        "accepted at (s: count) "
        + ", ".join(f"{at:g}: {n}" for at, n in at_500["latency"]["worst_1pct_at_s"])
        + "; files arrived at (s, events) "
        + ", ".join(f"{at:g} {n}" for at, _, n in at_500["file_inputs"]),
        f"- backlog: {b['validated_waiting']:,} validated events waiting "
        f"({b['events']:,} events played) drained in **{b['drain_s_from_ready']:,.1f} s** after "
        f"mapper and poster were ready ({b['drain_s_from_start']:,.1f} s from their start)",
        "- per-stage msgs/s (flat out): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in figures["runs"][0]["stage_msgs_per_s"].items()),
        "- peak memory (VmHWM, MiB): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in figures["peak_memory_mib"].items()),
        *_memory_lines(figures["rss_mib"]),
        *_bulk_lines(figures),
        "- SIGTERM → exit under load, s: "
        + ", ".join(f"{k} {v:g}" for k, v in figures["shutdown_s"].items()),
        f"- NATS sync_interval: {figures['nats_sync_interval']}; load generator CPU (flat out): "
        f"{figures['runs'][0]['load_generator_cpu_s']:.1f} s",
        f"- load average before/after: {figures['load_average_before']} / "
        f"{figures['load_average_after']}",
    ]
    return "\n".join(lines) + "\n"


def _memory_lines(rss: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = ["- RSS per service, MiB, steady / peak:"]
    for phase, services in rss.items():
        shown = ", ".join(
            f"{k} {v['steady_mib']:,.0f} / {v['peak_mib']:,.0f}" for k, v in services.items()
        )
        lines.append(f"  - {phase}: {shown}")
    return lines


def _bulk_lines(figures: dict[str, Any]) -> list[str]:
    remit, csv = figures["remittance_835"], figures["csv_import"]
    return [
        f"- {REMITTANCE_CLAIMS:,}-claim 835 ({remit['events']:,} events, {remit['journals']:,} "
        f"journals): answered in {remit['accepted_s']:,.1f} s, last journal committed after "
        f"**{remit['committed_s']:,.1f} s** ({remit['answer']}; ledger = oracle: "
        f"{remit['ledger_equals_oracle']})",
        f"- {CSV_ROWS:,}-row CSV: imported in **{csv['accepted_s']:,.1f} s** ({csv['answer']}), "
        f"last journal committed after {csv['committed_s']:,.1f} s (ledger = oracle: "
        f"{csv['ledger_equals_oracle']})",
    ]


def _cpu_line(figures: dict[str, Any]) -> str:
    flat = figures["runs"][0]
    per_event = {k: v / flat["events"] * 1000 for k, v in flat["cpu_s"].items()}
    split = ", ".join(f"{k} {v:.3f}" for k, v in per_event.items())
    return (
        f"- CPU ms per event, everything on the machine: pipeline flat out "
        f"**{figures['cpu_ms_per_event']:.3f}** ({split}, load generator "
        f"{figures['cpu_ms_per_event'] - sum(per_event.values()):.3f}; {flat['cores_busy']:.2f} "
        f"cores busy), raw four hops **{figures['baseline_cpu_ms_per_event']:.3f}** (NATS "
        f"included; {figures['baseline_cores_busy']:.2f} cores busy): CPU ratio "
        f"{figures['cpu_ratio_to_baseline']:.2f}; "
        f"0.8 of the baseline at the same cores busy needs "
        f"{figures['baseline_cpu_ms_per_event'] / 0.8:.3f} ms per event"
    )


async def bench(nats: NatsServer, server_db: str, workdir: Path, sync: str) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    db = await fresh_database(server_db, f"carebus_bench_pipeline_{sync}")
    await provision_stack(nats.url, db)
    stack = ServiceStack(nats.url, db, workdir / "stack", remittance_site=REMITTANCE_SITE)
    flat_scenario = scenario_for(FLAT_OUT_EVENTS, seed=1)
    remittance = remittance_file(
        REMITTANCE_CLAIMS, sites=SITES, remittance_site=REMITTANCE_SITE, seed=501
    )
    export = csv_export(CSV_ROWS, sites=SITES, remittance_site=REMITTANCE_SITE, seed=502)
    base_before = await baseline(nats, flat_scenario.events)
    base_500 = await baseline(nats, 5_000, rate=500)
    runs: list[dict[str, Any]] = []
    peaks: dict[str, float] = {}
    rss: dict[str, dict[str, dict[str, float]]] = {}
    try:
        await asyncio.to_thread(stack.start)
        pids = _pids(stack, nats, db)
        rss["idle"] = await idle_memory(stack)
        profiler = Profiler(pids, BENCH_DIR) if PROFILE else None
        runs.append(await measure(stack, flat_scenario, None, workdir / "play", pids, profiler))
        for n, rate in enumerate(RATES):
            target = max(4_000, int(rate * RATE_SECONDS))
            scenario = scenario_for(target, seed=10 + n)
            sampler = RssSampler(_service_pids(stack)) if rate == 500 else None
            runs.append(
                await measure(stack, scenario, float(rate), workdir / "play", pids, rss=sampler)
            )
            if sampler is not None:
                rss["at_500"] = sampler.figures()
        remittance_run = await bulk_file(stack, remittance, workdir / "play", pids)
        csv_run = await bulk_file(stack, export, workdir / "play", pids)
        backlog_run = await backlog_catch_up(stack, workdir / "backlog", peaks)
        rss["backlog_drain"] = backlog_run.pop("rss")
        for name, mib in _hwm_mib(stack).items():
            peaks[name] = max(peaks.get(name, 0.0), mib)
        shutdown = await shutdown_under_load(stack, workdir / "shutdown")
    finally:
        await asyncio.to_thread(stack.stop)
    base_after = await baseline(nats, flat_scenario.events)
    reference = (base_before["events_per_s"] + base_after["events_per_s"]) / 2
    raw_cpu, raw_cores = (
        (base_before[key] + base_after[key]) / 2 for key in ("all_cpu_s_per_1000", "cores_busy")
    )
    at_500 = next(r for r in runs if r["offered_per_s"] == 500)
    loaded = [rss["at_500"], rss["backlog_drain"]]
    figures: dict[str, Any] = {
        "events_per_s": runs[0]["events_per_s"],
        "baseline_events_per_s": reference,
        "ratio_to_baseline": runs[0]["events_per_s"] / reference,
        "p99_ms_at_500": at_500["latency"]["p99_ms"],
        "p99_ratio_at_500": at_500["latency"]["p99_ms"] / base_500["p99_ms"],
        "backlog_100k_drain_s": backlog_run["drain_s_from_ready"],
        "backlog_drain_ratio": backlog_run["drain_events_per_s"] / reference,
        "max_rss_mib": max(v["peak_mib"] for phase in loaded for v in phase.values()),
        "remittance_835_s": remittance_run["committed_s"],
        "csv_import_s": csv_run["accepted_s"],
        # CPU ms per event, everything on the machine: when both runs keep the two cores
        # busy, throughput goes inversely with it, and this ratio explains the one above.
        "cpu_ms_per_event": runs[0]["all_cpu_s_per_1000_events"],
        "baseline_cpu_ms_per_event": raw_cpu,
        "cpu_ratio_to_baseline": raw_cpu / runs[0]["all_cpu_s_per_1000_events"],
        "baseline_cores_busy": raw_cores,
        "backlog_events": backlog_run["events"],
        "baseline_before": base_before,
        "baseline_after": base_after,
        "baseline_at_500": base_500,
        "runs": runs,
        "backlog": backlog_run,
        "remittance_835": remittance_run,
        "csv_import": csv_run,
        "rss_mib": rss,
        "peak_memory_mib": peaks,
        "shutdown_s": shutdown,
        "nats_sync_interval": "always" if sync == "always" else "server default (2m)",
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    return figures


async def bench_with_sync(sync: str, server_db: str, workdir: Path) -> dict[str, Any]:
    """One whole run on a NATS server of its own with ``sync`` ("always" or "default")."""
    interval = "always" if sync == "always" else None  # None: the server's default
    nats = NatsServer(workdir / f"nats-{sync}", sync_interval=interval)
    nats.start()
    try:
        return await bench(nats, server_db, workdir / sync, sync)
    finally:
        nats.stop()


# Which bulk inputs run (``CAREBUS_BENCH_BULK_FILES=remittance_835`` for the 835 alone).
BULK_FILES = os.environ.get("CAREBUS_BENCH_BULK_FILES", "remittance_835,csv_import").split(",")


def _bulk_inputs() -> dict[str, Scenario]:
    makers = {
        "remittance_835": lambda: remittance_file(
            REMITTANCE_CLAIMS, sites=SITES, remittance_site=REMITTANCE_SITE, seed=501
        ),
        "csv_import": lambda: csv_export(
            CSV_ROWS, sites=SITES, remittance_site=REMITTANCE_SITE, seed=502
        ),
    }
    return {name: make() for name, make in makers.items() if name in BULK_FILES}


async def intake_only(server_db: str, workdir: Path, sync: str) -> dict[str, Any]:
    """The adapters alone, no stage consuming: how long each bulk input takes to be answered
    (the 835 upload) or imported (the CSV), the CPU of the adapter, the import and NATS, the
    adapters' RSS, and with ``CAREBUS_BENCH_PROFILE=1`` a py-spy profile of the billing
    adapter and of the import command (``.data/bench/bulk-intake-*``)."""
    interval = "always" if sync == "always" else None
    nats = NatsServer(workdir / f"nats-intake-{sync}", sync_interval=interval)
    nats.start()
    db = await fresh_database(server_db, f"carebus_bench_intake_{sync}")
    stack = ServiceStack(nats.url, db, workdir / sync / "intake", remittance_site=REMITTANCE_SITE)
    results: dict[str, Any] = {}
    try:
        await provision_stack(nats.url, db)
        await asyncio.to_thread(stack.start, ["billing-adapter", "scheduling-adapter"])
        for name, scenario in _bulk_inputs().items():
            if name == "remittance_835":
                scenario = opening_and_file(scenario)[1]  # the file alone: nothing validates
            out = BENCH_DIR / f"bulk-intake-{name}"
            out.mkdir(parents=True, exist_ok=True)
            services = _service_pids(stack)
            assert nats._process is not None
            cpu = CpuMeter({**services, "nats-server": nats._process.pid})
            rss = RssSampler(services)
            profiler = Profiler({"billing-adapter": services["billing-adapter"]}, out)
            spy = out / "profile-import.raw"
            spy.unlink(missing_ok=True)  # an earlier run's
            prefix = (
                [str(profiler.binary), "record", "--format", "raw", "--rate", "100",
                 "--nonblocking", "--output", str(spy), "--"]
                if PROFILE and profiler.binary and name == "csv_import" else []
            )  # fmt: skip
            stop = asyncio.Event()
            sampling = asyncio.create_task(rss.run(stop))
            if name == "remittance_835":
                profiler.start()
            cpu.start()
            import_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            player = Player(
                scenario, stack.endpoints, workdir / "intake-play", connections=16,
                import_prefix=prefix,
            )  # fmt: skip
            played = await player.play()
            used = cpu.stop()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            stop.set()
            await sampling
            [sent] = played.sent
            results[name] = {
                "events": len(sent.delivery.facts),
                "answer": sent.answer,
                "answered_s": round(sent.acked_at - sent.sent_at, 2),
                "cpu_s": {k: round(v, 2) for k, v in used.items()},
                "import_cpu_s": round(
                    after.ru_utime + after.ru_stime - import_cpu.ru_utime - import_cpu.ru_stime, 2
                ),
                "rss": rss.figures(),
                "profile": profiler.stop().get("billing-adapter")
                if name == "remittance_835"
                else (_profile_summary(spy.read_text(errors="replace")) if spy.exists() else None),
            }
    finally:
        await asyncio.to_thread(stack.stop)
        nats.stop()
    return results


async def bulk_only(server_db: str, workdir: Path, sync: str) -> dict[str, Any]:
    """Only the bulk inputs (``CAREBUS_BENCH_ONLY=bulk``): the 835 file, then the CSV export,
    each on the running stack with every service's RSS, each stage's span and, with
    ``CAREBUS_BENCH_PROFILE=1``, a py-spy profile per service (``.data/bench/bulk-*``)."""
    interval = "always" if sync == "always" else None
    nats = NatsServer(workdir / f"nats-{sync}", sync_interval=interval)
    nats.start()
    db = await fresh_database(server_db, f"carebus_bench_bulk_{sync}")
    stack = ServiceStack(nats.url, db, workdir / sync / "stack", remittance_site=REMITTANCE_SITE)
    results: dict[str, Any] = {"nats_sync_interval": sync}
    try:
        await provision_stack(nats.url, db)
        inputs = _bulk_inputs()
        await asyncio.to_thread(stack.start)
        pids = _pids(stack, nats, db)
        results["rss_idle"] = await idle_memory(stack)
        for name, scenario in inputs.items():
            out = BENCH_DIR / f"bulk-{name}"
            out.mkdir(parents=True, exist_ok=True)
            profiler = Profiler(pids, out) if PROFILE else None
            results[name] = await bulk_file(stack, scenario, workdir / "play", pids, profiler)
        results["peak_memory_mib"] = _hwm_mib(stack)
    finally:
        await asyncio.to_thread(stack.stop)
        nats.stop()
    return results


def _started(postgres: PostgresServer) -> str:
    postgres.start()
    # The player signs in with the tests' client key (CAREBUS_API_KEY): every database made
    # from template1 must know it, as on the tests' own server.
    asyncio.run(auth.grant_everywhere(postgres.dsn, template=True))
    return postgres.dsn


ONLY = os.environ.get("CAREBUS_BENCH_ONLY", "")


@pytest.mark.skipif(ONLY != "bulk", reason="CAREBUS_BENCH_ONLY=bulk runs the bulk inputs alone")
def test_bulk_inputs(tmp_path: Path, database_url: str) -> None:
    # The session's PostgreSQL (its template holds the tests' API key); nothing ran before.
    results: dict[str, Any] = {}
    for sync in SYNCS:
        results[sync] = {}
        if os.environ.get("CAREBUS_BENCH_BULK_INTAKE", "1") == "1":
            results[sync]["intake_only"] = uvloop.run(intake_only(database_url, tmp_path, sync))
        if os.environ.get("CAREBUS_BENCH_BULK_PIPELINE", "1") == "1":
            results[sync].update(uvloop.run(bulk_only(database_url, tmp_path, sync)))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "bulk.json").write_text(json.dumps(results, indent=2, default=str))
    for sync, run in results.items():
        print(f"\n## bulk inputs, NATS sync {sync}")
        for name, alone in run.get("intake_only", {}).items():
            top = (alone["profile"] or {}).get("own_time_by_library")
            print(
                f"{name}, adapter alone: {alone['answer']} in {alone['answered_s']} s, "
                f"{alone['events']} events; CPU s {alone['cpu_s']}, import {alone['import_cpu_s']}"
                f"; RSS peak MiB "
                + ", ".join(f"{k} {v['peak_mib']:.0f}" for k, v in alone["rss"].items())
                + f"; own time by library {top}"
            )
        for name in ("remittance_835", "csv_import"):
            if name not in run:
                continue
            shown = run[name]
            print(
                f"{name}, whole pipeline: answered {shown['accepted_s']} s, last journal "
                f"{shown['committed_s']} s, {shown['events']} events, {shown['journals']} "
                f"journals, ledger = oracle {shown['ledger_equals_oracle']}; stages (first s, "
                f"last s, acked) {shown['stage_spans']}"
            )
            print("   RSS peak MiB: " + ", ".join(
                f"{k} {v['peak_mib']:.0f}" for k, v in shown["rss"].items()
            ))  # fmt: skip
            print(f"   CPU s: { {k: round(v, 1) for k, v in shown['cpu_s'].items()} }")
            print(f"   PostgreSQL CPU s by client: {shown['postgres_cpu_s_by_client']}")
            for row in shown["postgres_top_statements"]:
                print(f"   pg ms, calls, rows: {row}")
    for run in results.values():
        for name in ("remittance_835", "csv_import"):
            if name in run:
                assert run[name]["ledger_equals_oracle"], run[name]["differences"]


@pytest.mark.skipif(bool(ONLY), reason="CAREBUS_BENCH_ONLY picks another part")
def test_pipeline_end_to_end(tmp_path: Path) -> None:
    # Servers of its own: the session PostgreSQL still vacuums what the stage benchmarks wrote.
    postgres = PostgresServer(tmp_path / "pg", durable=False)  # no fsync: NATS is measured
    results: dict[str, dict[str, Any]] = {}
    try:
        database_url = os.environ.get("DATABASE_URL") or _started(postgres)
        for sync in SYNCS:
            # uvloop, like the services: the player and the raw producer share these two cores.
            results[sync] = uvloop.run(bench_with_sync(sync, database_url, tmp_path))
    finally:
        postgres.stop()
    headline = results.get("always") or results["default"]
    figures = {**headline, "default_sync": results.get("default") if "always" in results else None}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "latest.json").write_text(json.dumps(figures, indent=2, default=str))
    table = "\n".join(
        f"## NATS sync_interval: {run['nats_sync_interval']}\n\n{markdown(run)}"
        for run in results.values()
    )
    (BENCH_DIR / "latest.md").write_text(table)
    latency_vs_load(BENCH_DIR / "latency_vs_load.png", headline["runs"])
    report("pipeline", {k: v for k, v in figures.items() if not isinstance(v, dict | list)})
    print(table)
    for run in results.values():
        assert all(r["ledger_equals_oracle"] for r in run["runs"]), [
            r["differences"] for r in run["runs"]
        ]
