"""Faults on the 3-node cluster with three replicas of each stage (docs/decisions/027):
the NATS node leading the SCHEDULING stream killed mid-run, and a mapper replica SIGTERMed
mid-run (then started again). Either way the ledger must equal the oracle, every event be ok
(nothing acknowledged lost, nothing posted twice) and no stage put one entity's events out of
order.
The node kill reports the write pause a probe publishing every 50 ms saw."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts.subjects import PARTITIONS
from carebus_scenario.generator import Scenario
from carebus_scenario.model import Delivery
from carebus_scenario.observe import wait_quiet
from carebus_scenario.oracle import Expectation
from carebus_scenario.player import MllpClient, Player, PlayError, load_masterdata
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsCluster
from carebus_shared.jetstream.connection import server_list
from carebus_shared.jetstream.lease import Lease
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.chaos.runner import Operator
from tests.scaleout.conftest import STAGES, cluster_stack, stage_figures
from tests.scaleout.test_cluster_pipeline import (  # noqa: F401 (fixtures)
    expected,
    judge,
    scenario,
)

pytestmark = pytest.mark.slow
PROBE = "PROBE"
PROBE_TIMEOUT_S = 2.0


async def _until_posted(database_url: str, count: int, play: asyncio.Task[object]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(600):  # bounded: 60 s
            posted = await conn.fetchval("SELECT count(*) FROM carebus_erp_poster.journal_entry")
            if posted >= count or play.done():
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _leader(js: JetStreamContext, stream: str) -> str:
    cluster = (await js.stream_info(stream)).cluster
    assert cluster is not None
    assert cluster.leader is not None
    return cluster.leader


@dataclass
class Probe:
    """Publishes to PROBE every 50 ms; each publish's time until acknowledged, and when each
    acknowledgement came (monotonic)."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (began, took)
    acked_at: list[float] = field(default_factory=list)

    async def run(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():  # bounded by stop (set within the test's time bound)
            n += 1
            began = time.monotonic()
            # A publish in flight to the killed node is never answered: it is sent again after
            # PROBE_TIMEOUT_S, so the gap measures the cluster, not a long client timeout.
            with contextlib.suppress(Exception):
                await js.publish(f"probe.{n}", b"x", timeout=PROBE_TIMEOUT_S)
                self.acked_at.append(time.monotonic())
            self.latencies.append((began, time.monotonic() - began))
            await asyncio.sleep(0.05)

    def pause_after(self, moment: float) -> tuple[float, float]:
        """From ``moment`` on: the p99 publish latency and the longest time without an
        acknowledgement (from ``moment`` or the previous one)."""
        took = sorted(t for began, t in self.latencies if began >= moment)
        p99 = took[int(0.99 * (len(took) - 1))] if took else float("inf")
        acks = [moment, *(a for a in self.acked_at if a >= moment)]
        gap = max((b - a for a, b in itertools.pairwise(acks)), default=float("inf"))
        return p99, gap


PLAY_BOUND_S = 240.0  # the play, however the failover goes, ends within this


class PatientSender(Operator):
    """The fault suite's sender, which also goes on sending an input whose adapter stayed
    unavailable through its retries (503s for the whole election on a loaded machine), as an
    interface engine keeps its queue: a 503 means not taken."""

    async def _send(
        self, delivery: Delivery, mllp: MllpClient | None, client: httpx.AsyncClient
    ) -> str:
        for attempt in range(6):  # bounded: about half a minute more
            try:
                return await super()._send(delivery, mllp, client)
            except PlayError:
                if attempt == 5:
                    raise
                await asyncio.sleep(5.0)
        raise AssertionError("unreachable")


async def test_the_stream_leaders_node_killed_mid_run_loses_nothing(
    scenario: Scenario,  # noqa: F811
    expected: Expectation,  # noqa: F811
    database_url: str,
    nats_cluster: NatsCluster,
    tmp_path: Path,
) -> None:
    instances = dict.fromkeys(STAGES, 3)
    async with cluster_stack(database_url, nats_cluster, tmp_path / "stack", instances) as stack:
        nc = await nats.connect(server_list(nats_cluster.url))
        js = nc.jetstream()
        await js.add_stream(name=PROBE, subjects=["probe.>"], num_replicas=3)
        victim = await _leader(js, "SCHEDULING")
        for _ in range(20):  # bounded: move the probe's leader to the victim's node
            if await _leader(js, PROBE) == victim:
                break
            with contextlib.suppress(Exception):
                await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{PROBE}", b"", timeout=5)
            await asyncio.sleep(1.0)
        assert await _leader(js, PROBE) == victim
        stop, probe = asyncio.Event(), Probe()
        probing = asyncio.create_task(probe.run(js, stop))
        endpoints = stack.endpoints
        await load_masterdata(scenario.network, endpoints.validator_http)
        # The fault suite's sender: it sends again what was not answered (no ACK, 503) and
        # runs the CSV import again when it stopped for want of NATS.
        player = PatientSender(scenario, endpoints, tmp_path / "play", rate=80)
        play = asyncio.create_task(player.play())
        await _until_posted(endpoints.database_url, expected.journal_count // 4, play)
        assert not play.done(), "the play finished before the node could be killed mid-run"
        killed_at = time.monotonic()
        await asyncio.to_thread(nats_cluster.node(victim).stop, True)
        async with asyncio.timeout(PLAY_BOUND_S):
            report = await play
        played = time.monotonic()
        await asyncio.sleep(2.0)
        stop.set()
        await probing
        await nc.close()
        waited = await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=120)
        p99, gap = probe.pause_after(killed_at)
        print(
            f"\nwrite pause after killing {victim} (probe every 50 ms): p99 publish {p99:.2f} s,"
            f" longest gap without an ACK {gap:.2f} s; play ended {played - killed_at:.1f} s"
            f" after the kill, pipeline quiet {max(0.0, waited - 1.5):.1f} s after the play"
        )
        assert await _leader_elsewhere(nats_cluster, victim)
        problems = await judge(scenario, expected, stack, report.surprises)
        assert problems == [], "\n".join(problems)
        assert gap < 10.0


async def _leader_elsewhere(cluster: NatsCluster, victim: str) -> bool:
    nc = await nats.connect(
        [node.url for node in cluster.nodes if node.running], max_reconnect_attempts=3
    )
    try:
        return await _leader(nc.jetstream(), "SCHEDULING") != victim
    finally:
        await nc.close()


async def test_the_active_mapper_sigtermed_mid_run_hands_its_work_over(
    scenario: Scenario,  # noqa: F811
    expected: Expectation,  # noqa: F811
    database_url: str,
    nats_cluster: NatsCluster,
    tmp_path: Path,
) -> None:
    """A mapper replica SIGTERMed mid-run gives its partitions back at once and the other two
    take them; started again, it gets its share back (docs/decisions/030)."""
    instances = dict.fromkeys(STAGES, 3)
    async with cluster_stack(database_url, nats_cluster, tmp_path / "stack", instances) as stack:
        endpoints = stack.endpoints
        await load_masterdata(scenario.network, endpoints.validator_http)
        play = asyncio.create_task(Player(scenario, endpoints, tmp_path / "play", rate=80).play())
        await _until_posted(endpoints.database_url, expected.journal_count // 4, play)
        assert not play.done(), "the play finished before the mapper could be stopped mid-run"
        victim = await _lease_holder(stack, "mapper")
        others = [name for name in stack.instances("mapper") if name != victim]
        began = time.monotonic()
        code = await asyncio.to_thread(stack.terminate, victim, 20.0)
        took = time.monotonic() - began
        taken = await _until_held(stack, others, PARTITIONS, 15.0)
        print(
            f"\n{victim} drained and exited ({code}) in {took:.1f} s; the other two held all "
            f"{PARTITIONS} partitions {taken:.1f} s later"
        )
        report = await play
        problems = await judge(scenario, expected, stack, report.surprises)
        assert problems == [], "\n".join(problems)
        assert code == 0
        assert took < 20.0  # within the shutdown grace
        # Started again, it gets its share back from the two that held everything.
        await asyncio.to_thread(stack.start, [victim])
        back = await _until_held(stack, [victim], PARTITIONS // 3, 40.0)
        everyone = await _until_held(stack, stack.instances("mapper"), PARTITIONS, 10.0)
        print(f"{victim} started again held {PARTITIONS // 3} partitions after {back:.1f} s")
        assert everyone < 10.0


async def _held(stack: ServiceStack, names: list[str]) -> int:
    total = 0.0
    for name in names:
        total += (await stage_figures(stack, name)).get(("held", "mapper"), 0.0)
    return int(total)


async def _until_held(stack: ServiceStack, names: list[str], count: int, timeout_s: float) -> float:
    """Seconds until ``names`` together hold ``count`` of the mapper's partitions (and each
    no more than its fair share when that is the whole stage's)."""
    started = time.monotonic()
    for _ in range(int(timeout_s / 0.2)):  # bounded by the timeout
        if await _held(stack, names) == count:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{names} did not hold {count} partitions within {timeout_s} s")


async def _lease_holder(stack: ServiceStack, service: str, timeout_s: float = 10.0) -> str:
    """The instance of ``service`` holding the lease of its first partition (its pid is in
    the value). The lease may be free for a moment (handed back while the replicas balance
    their shares; an empty value): then asked again, within ``timeout_s``."""
    first = TOPOLOGY.stage(service)[0]  # the stage is named after its service
    nc = await nats.connect(server_list(stack.nats_url))
    try:
        for _ in range(int(timeout_s / 0.2)):  # bounded by the timeout
            holder = await Lease(first.stream, first.durable).holder_now(nc.jetstream())
            if holder:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"nobody held {first.durable}'s lease for {timeout_s} s")
    finally:
        await nc.close()
    pid = int(holder.rsplit("-", 2)[-2])
    return next(name for name in stack.instances(service) if stack.pid(name) == pid)
