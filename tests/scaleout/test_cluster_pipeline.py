"""The small scenario's day on a 3-node NATS cluster with R3 streams (docs/decisions/027):
with one instance of each service, then with three of each stage (validator, mapper, poster)
sharing their durables. The ledger must equal the oracle, every event be classified ok (none
lost, none posted twice), and no stage may put out two events of one entity in another order
than its input held them."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from carebus_contracts.subjects import PARTITIONS
from carebus_scenario.checker import classify, observe_all, order_inversions
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.observe import observe, wait_quiet
from carebus_scenario.oracle import Expectation, expect
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.stack import ServiceStack
from carebus_scenario.verify import differences
from carebus_shared.devstack.nats_server import NatsCluster
from carebus_shared.jetstream.connection import server_list
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.scaleout.conftest import (
    ORDERED_STAGES,
    STAGES,
    balanced,
    cluster_stack,
    stage_figures,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(SMALL)


@pytest.fixture(scope="module")
def expected(scenario: Scenario) -> Expectation:
    return expect(scenario)


async def play_and_judge(
    scenario: Scenario, expected: Expectation, stack: ServiceStack, workdir: Path
) -> list[str]:
    """Play the day (as fast as the services take it), wait for the pipeline to settle, and
    return every problem: answers that differed, ledger differences, events not ok, order."""
    endpoints = stack.endpoints
    await load_masterdata(scenario.network, endpoints.validator_http)
    report = await Player(scenario, endpoints, workdir).play()
    return await judge(scenario, expected, stack, report.surprises)


async def judge(
    scenario: Scenario, expected: Expectation, stack: ServiceStack, surprises: list[str]
) -> list[str]:
    """Once the pipeline has settled: answers that differed, ledger differences, events not
    ok, order inversions."""
    endpoints = stack.endpoints
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=120)
    observed = await observe(endpoints.database_url, endpoints.validator_http, endpoints.nats_url)
    everything = await observe_all(endpoints.database_url, endpoints.nats_url)
    verdict = classify(scenario, expected, everything)
    return [
        *(f"surprise: {s}" for s in surprises),
        *differences(expected, observed),
        *verdict.problems(),
        *order_inversions(everything),
    ]


async def test_a_day_on_a_three_node_cluster_reaches_the_ledger_exactly_once(
    scenario: Scenario,
    expected: Expectation,
    database_url: str,
    nats_cluster: NatsCluster,
    tmp_path: Path,
) -> None:
    async with cluster_stack(database_url, nats_cluster, tmp_path / "stack") as stack:
        nc = await nats.connect(server_list(nats_cluster.url))
        try:
            for spec in TOPOLOGY.streams:  # R3: a leader and two current followers
                cluster = (await nc.jetstream().stream_info(spec.name)).cluster
                assert cluster is not None
                assert cluster.leader is not None
                assert len(cluster.replicas or []) == 2, spec.name
        finally:
            await nc.close()
        problems = await play_and_judge(scenario, expected, stack, tmp_path / "play")
        assert problems == [], "\n".join(problems)


async def test_three_replicas_of_each_stage_keep_the_promises(
    scenario: Scenario,
    expected: Expectation,
    database_url: str,
    nats_cluster: NatsCluster,
    tmp_path: Path,
) -> None:
    instances = dict.fromkeys(STAGES, 3)
    async with cluster_stack(database_url, nats_cluster, tmp_path / "stack", instances) as stack:
        assert len(stack.instances("mapper")) == 3
        # A short day: it starts once the replicas share the partitions, two each.
        print(f"\npartitions shared evenly {await balanced(stack):.1f} s after start-up")
        problems = await play_and_judge(scenario, expected, stack, tmp_path / "play")
        assert problems == [], "\n".join(problems)
        # The replicas shared the ordered work (docs/decisions/030): each handled some of
        # every ordered stage, and each holds a fair share of its partitions.
        handled: dict[str, dict[str, float]] = {}
        for service, stages in ORDERED_STAGES.items():
            for instance in stack.instances(service):
                figures = await stage_figures(stack, instance)
                for stage in stages:
                    handled.setdefault(stage, {})[instance] = figures.get(("handled", stage), 0)
                    held = figures.get(("held", stage), 0)
                    assert held == PARTITIONS / 3, f"{instance} holds {held} of {stage}"
        print(f"\nmessages handled per replica: {handled}")
        assert all(count > 0 for per in handled.values() for count in per.values()), handled
