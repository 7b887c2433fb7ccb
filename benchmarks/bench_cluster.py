"""`make bench` / `make cluster`: the pipeline on one NATS server against a 3-node cluster
with R3 streams, with one instance of each service and with three replicas of each stage
(docs/decisions/027), in the same run, as ratios to the single server.

Each configuration gets a fresh stack and database and plays the same day twice: flat out
(sustained events/s, first input sent to last journal committed; latency adapter accepted →
ledger committed) and at a fixed offered rate (its p99). NATS runs with the server's default
``sync_interval`` in every configuration (as ``bench_pipeline``). Figures go to
.data/bench/cluster.json. ``CAREBUS_BENCH_CLUSTER_EVENTS`` (default 3000) and
``CAREBUS_BENCH_CLUSTER_RATE`` (events/s, default 200) scale it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.bench_pipeline import measure
from benchmarks.bench_report import report
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsCluster, NatsServer
from tests.scaleout.conftest import PATIENT_CHARGE_WATCH
from tests.support.stacks import running_stack

EVENTS = int(os.environ.get("CAREBUS_BENCH_CLUSTER_EVENTS", "3000"))
RATE = float(os.environ.get("CAREBUS_BENCH_CLUSTER_RATE", "200"))
EVENTS_PER_VISIT = 7.0  # what the default mix yields per visit (bench_pipeline)
STAGES = ("masterdata-validator", "mapper", "erp-poster")


def scenario_of(events: int, seed: int) -> Scenario:
    per_site = max(2, round(events / (EVENTS_PER_VISIT * SMALL.sites)))
    return generate(SMALL.with_(seed=seed, appointments_per_site=per_site))


@contextmanager
def single(workdir: Path) -> Any:
    server = NatsServer(workdir / "nats", sync_interval=None)
    server.start()
    try:
        yield server.url, [server]
    finally:
        server.stop(kill=True)


@contextmanager
def cluster(workdir: Path) -> Any:
    nodes = NatsCluster(workdir / "nats", sync_interval=None)
    nodes.start()
    try:
        yield nodes.url, nodes.nodes
    finally:
        nodes.stop(kill=True)


Servers = Callable[[Path], AbstractContextManager[tuple[str, list[NatsServer]]]]
# (label, NATS, stream replicas, instances of each stage)
CONFIGURATIONS: tuple[tuple[str, Servers, int, int], ...] = (
    ("1 server, 1 of each", single, 1, 1),
    ("3-node cluster R3, 1 of each", cluster, 3, 1),
    ("3-node cluster R3, 3 per stage", cluster, 3, 3),
)


def _pids(stack: ServiceStack, servers: list[NatsServer]) -> dict[str, int]:
    pids = {name: stack.pid(name) for name in stack.processes}
    for n, server in enumerate(servers):
        assert server._process is not None
        pids[f"nats-server-{n + 1}"] = server._process.pid
    return pids


@asynccontextmanager
async def configured(
    database_url: str, workdir: Path, servers: Servers, replicas: int, instances: int
) -> AsyncIterator[tuple[ServiceStack, dict[str, int]]]:
    with servers(workdir) as (url, nodes):
        async with running_stack(
            database_url,
            url,
            workdir / "stack",
            stream_replicas=replicas,
            instances=dict.fromkeys(STAGES, instances),
            extra_env={"ops-console": PATIENT_CHARGE_WATCH},
        ) as stack:
            yield stack, _pids(stack, nodes)


async def bench(database_url: str, workdir: Path) -> dict[str, Any]:
    flat, paced = scenario_of(EVENTS, seed=1), scenario_of(EVENTS, seed=2)
    figures: dict[str, Any] = {}
    for n, (label, servers, replicas, instances) in enumerate(CONFIGURATIONS):
        where = workdir / f"config{n}"
        async with configured(database_url, where, servers, replicas, instances) as (stack, pids):
            flat_out = await measure(stack, flat, None, where / "flat", pids)
            at_rate = await measure(stack, paced, RATE, where / "paced", pids)
        figures[label] = {
            "events_per_s": flat_out["events_per_s"],
            "p99_ms_flat_out": flat_out["latency"]["p99_ms"],
            "p99_ms_at_rate": at_rate["latency"]["p99_ms"],
            "p50_ms_at_rate": at_rate["latency"]["p50_ms"],
            "ledger_equals_oracle": flat_out["ledger_equals_oracle"]
            and at_rate["ledger_equals_oracle"],
            "differences": flat_out["differences"] + at_rate["differences"],
        }
    return figures


def table(figures: dict[str, Any]) -> str:
    reference = next(iter(figures.values()))
    lines = [
        f"| configuration | events/s flat out | ratio | p99 ms flat out | p99 ms at {RATE:g}/s "
        "| ratio | ledger = oracle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for label, f in figures.items():
        lines.append(
            f"| {label} | {f['events_per_s']:,.0f} "
            f"| {f['events_per_s'] / reference['events_per_s']:.2f} "
            f"| {f['p99_ms_flat_out']:,.0f} | {f['p99_ms_at_rate']:,.0f} "
            f"| {f['p99_ms_at_rate'] / max(1.0, reference['p99_ms_at_rate']):.2f} "
            f"| {'yes' if f['ledger_equals_oracle'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def test_cluster_against_one_server(database_url: str, tmp_path: Path) -> None:
    figures = uvloop.run(bench(database_url, tmp_path))
    flat = {
        f"{label}: {key}": value
        for label, f in figures.items()
        for key, value in f.items()
        if not isinstance(value, list)
    }
    report("cluster", {"events": EVENTS, "rate_per_s": RATE, **flat})
    print("\n" + table(figures))
    assert all(f["ledger_equals_oracle"] for f in figures.values()), [
        f["differences"] for f in figures.values()
    ]
