"""A 3-node NATS cluster on loopback with R3 streams, and the five services on it (docs/
decisions/027). Every pipeline consumer's ack deadline is shortened to 5 s (production:
30 s) so that what a killed or stopped replica held comes back quickly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from carebus_contracts.subjects import PARTITIONS
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsCluster
from carebus_shared.jetstream.topology import TOPOLOGY, Topology
from tests.support import auth
from tests.support.stacks import running_stack

SHORT_BACKOFF_S = (5.0, 10.0, 20.0, 60.0)
STAGES = ("masterdata-validator", "mapper", "erp-poster")
# The scenario's day lies in the past, so with the default 24 h wait the ops console opens a
# completed-without-charge work item for any visit whose charge is still on its way when it
# looks (a slow play: the node kill, the benchmark); the oracle expects none.
PATIENT_CHARGE_WATCH = {"CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H": "1000000"}


def short_deadlines(topology: Topology = TOPOLOGY) -> Topology:
    consumers = tuple(
        replace(c, backoff_s=SHORT_BACKOFF_S) if c.pipeline else c for c in topology.consumers
    )
    return replace(topology, consumers=consumers)


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    yield cluster
    cluster.stop(kill=True)


@asynccontextmanager
async def cluster_stack(
    database_url: str,
    cluster: NatsCluster,
    workdir: Path,
    instances: Mapping[str, int] | None = None,
    topology: Topology | None = None,
) -> AsyncIterator[ServiceStack]:
    """The services on ``cluster`` (every NATS_URL naming all three nodes), streams at 3
    replicas; ``instances`` per service (default one each)."""
    async with running_stack(
        database_url,
        cluster.url,
        workdir,
        topology=topology or short_deadlines(),
        extra_env={
            "erp-poster": {"CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S": "1"},
            "ops-console": PATIENT_CHARGE_WATCH,
        },
        stream_replicas=3,
        instances=instances,
    ) as services:
        yield services


ORDERED_STAGES = {
    "masterdata-validator": ("masterdata-validator-scheduling", "masterdata-validator-billing"),
    "mapper": ("mapper",),
}


async def stage_figures(stack: ServiceStack, instance: str) -> dict[tuple[str, str], float]:
    """From one instance's /metrics: (metric, stage) → value, for the messages it handled
    (``handled``) and the partitions it holds (``held``)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.get(
            f"{stack.http(instance)}/metrics", headers={"Authorization": f"Bearer {auth.KEY}"}
        )
    answer.raise_for_status()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name == "carebus_stage_messages_total":
                key = ("handled", stage)
                found[key] = found.get(key, 0.0) + sample.value
            elif sample.name == "carebus_stage_partitions_held":
                found[("held", stage)] = sample.value
    return found


async def balanced(stack: ServiceStack, timeout_s: float = 30.0) -> float:
    """Seconds until every replica of each ordered stage holds an equal share of its
    partitions (docs/decisions/030)."""
    started = time.monotonic()
    held: dict[str, float] = {}
    for _ in range(int(timeout_s / 0.5)):  # bounded by the timeout
        held = {}
        for service, stages in ORDERED_STAGES.items():
            replicas = stack.instances(service)
            for instance in replicas:
                figures = await stage_figures(stack, instance)
                for stage in stages:
                    held[f"{instance} {stage}"] = figures.get(("held", stage), 0.0)
        if held and all(
            value == PARTITIONS / len(stack.instances(name.split(" ")[0].split("~")[0]))
            for name, value in held.items()
        ):
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"partitions not shared evenly within {timeout_s} s: {held}")
