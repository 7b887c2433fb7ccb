"""Replicas of an ordered stage share its partitions (docs/decisions/030): a fair share each,
one entity never in two replicas' hands at once, a newcomer gets partitions, a stopped
replica's partitions are taken by the others."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_contracts.subjects import PARTITIONS, partition_of, partition_token
from carebus_shared.jetstream.balancer import Balancer, fair_share
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.provision import apply_key_value, consumer_config
from carebus_shared.jetstream.topology import (
    ERP_POSTER,
    MAPPER,
    ORDERED_IN_FLIGHT,
    STAGE_LEASES_BUCKET,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    ConsumerSpec,
    as_whole,
    partitions_of,
    stage_of_durable,
)


@pytest.mark.parametrize(
    ("members", "share"), [(0, 6), (1, 6), (2, 3), (3, 2), (4, 2), (5, 2), (6, 1), (9, 1)]
)
def test_the_fair_share_covers_every_partition(members: int, share: int) -> None:
    assert fair_share(PARTITIONS, members) == share
    assert share * max(members, 1) >= PARTITIONS


async def _partitioned_stream(js: JetStreamContext) -> tuple[list[ConsumerSpec], str]:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"PARTS_{tag}", f"parts.{tag}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    specs = [
        ConsumerSpec(
            stream,
            f"stage-{partition_token(p)}",
            (f"{subject}.*.{partition_token(p)}",),
            "test",
            backoff_s=(30.0,),
            max_ack_pending=ORDERED_IN_FLIGHT,
            ordered=True,
            group="stage",
            partition=p,
        )
        for p in range(PARTITIONS)
    ]
    for spec in specs:
        await js.add_consumer(stream, consumer_config(spec))
    await apply_key_value(js, TOPOLOGY.key_value(STAGE_LEASES_BUCKET), 1)
    return specs, subject


@dataclass
class Replica:
    name: str
    balancer: Balancer
    consumers: list[StageConsumer]

    def start(self, js: JetStreamContext) -> None:
        self.balancer.start(lambda: js)
        for consumer in self.consumers:
            consumer.start(lambda: js)

    async def stop(self, js: JetStreamContext) -> None:
        await asyncio.gather(*(c.stop(5.0) for c in self.consumers))
        await self.balancer.stop(js)

    @property
    def held(self) -> int:
        return len(self.balancer.held)


def _replica(
    name: str,
    specs: Sequence[ConsumerSpec],
    on_batch: Callable[[str], Callable[[Sequence[Msg]], Awaitable[None]]],
) -> Replica:
    balancer = Balancer(specs[0].stream, "stage", len(specs), member=f"{name}-{uuid.uuid4().hex}")
    consumers = [
        StageConsumer(
            spec,
            on_batch(name),
            batch_size=10,
            idle_wait_s=0.2,
            lease_poll_s=0.2,
            balancer=balancer,
        )
        for spec in specs
    ]
    return Replica(name, balancer, consumers)


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


async def test_three_replicas_share_the_partitions_and_never_hold_one_entity_at_once(
    js: JetStreamContext,
) -> None:
    specs, subject = await _partitioned_stream(js)
    handled: dict[str, list[tuple[str, int]]] = {}
    busy: dict[str, str] = {}  # entity -> replica handling it now
    overlaps: list[str] = []

    def on_batch(name: str) -> Callable[[Sequence[Msg]], Awaitable[None]]:
        async def handle(msgs: Sequence[Msg]) -> None:
            entities = {m.data.decode().split(":")[0] for m in msgs}
            overlaps.extend(e for e in entities if busy.get(e, name) != name)
            busy.update(dict.fromkeys(entities, name))
            await asyncio.sleep(0.01)  # room for another replica to overlap
            for m in msgs:
                entity, n = m.data.decode().split(":")
                handled.setdefault(entity, []).append((name, int(n)))
                await m.ack()
            for entity in entities:
                busy.pop(entity, None)

        return handle

    replicas = [_replica(name, specs, on_batch) for name in ("a", "b", "c")]
    for replica in replicas:
        replica.start(js)
    try:
        await _until(
            lambda: sorted(r.held for r in replicas) == [2, 2, 2], 30.0, "two partitions each"
        )
        entities = [f"E{n}" for n in range(60)]
        for n in range(10):
            for entity in entities:
                await js.publish(
                    f"{subject}.{entity}.{partition_token(partition_of(entity))}",
                    f"{entity}:{n}".encode(),
                )
        await _until(lambda: sum(map(len, handled.values())) >= 600, 60.0, "every message handled")
    finally:
        for replica in replicas:
            await replica.stop(js)
    assert overlaps == []
    assert all([n for _, n in handled[e]] == list(range(10)) for e in entities)
    by_replica = {
        name: sum(1 for e in handled.values() for r, _ in e if r == name) for name in "abc"
    }
    assert all(count > 0 for count in by_replica.values()), by_replica
    # One replica per entity: its partition stayed with one replica throughout.
    assert all(len({r for r, _ in handled[e]}) == 1 for e in entities)


async def test_a_later_replica_gets_partitions_and_a_stopped_one_gives_them_back(
    js: JetStreamContext,
) -> None:
    specs, subject = await _partitioned_stream(js)
    seen: dict[str, int] = {"a": 0, "b": 0}

    def on_batch(name: str) -> Callable[[Sequence[Msg]], Awaitable[None]]:
        async def handle(msgs: Sequence[Msg]) -> None:
            seen[name] += len(msgs)
            for m in msgs:
                await m.ack()

        return handle

    first = _replica("a", specs, on_batch)
    later = _replica("b", specs, on_batch)
    first.start(js)
    try:
        await _until(lambda: first.held == PARTITIONS, 20.0, "the only replica holds all")
        later.start(js)
        await _until(lambda: (first.held, later.held) == (3, 3), 40.0, "an equal share each")
        for n in range(60):
            entity = f"E{n}"
            await js.publish(f"{subject}.{entity}.{partition_token(partition_of(entity))}", b"x")
        await _until(lambda: sum(seen.values()) >= 60, 20.0, "every message handled")
        assert min(seen.values()) > 0, seen
        stopped = time.monotonic()
        await later.stop(js)
        await _until(lambda: first.held == PARTITIONS, 20.0, "the stopped one's partitions taken")
        taken_s = time.monotonic() - stopped
    finally:
        await later.stop(js)
        await first.stop(js)
    assert taken_s < 10.0  # released at once: no waiting for the leases to expire


def test_a_partitions_durable_names_its_stage() -> None:
    """Metrics, exception records (an advisory names the partition's durable), replay and
    permissions speak of the stage as a whole."""
    assert partitions_of(MAPPER) == tuple(f"mapper-p{p}" for p in range(PARTITIONS))
    assert partitions_of("mapper-p4") == partitions_of(MAPPER)
    assert partitions_of(ERP_POSTER) == (ERP_POSTER,)
    assert stage_of_durable("masterdata-validator-billing-p2") == VALIDATOR_BILLING
    assert stage_of_durable(ERP_POSTER) == ERP_POSTER
    assert stage_of_durable("someone-elses") == "someone-elses"
    assert {VALIDATOR_SCHEDULING, VALIDATOR_BILLING, MAPPER, ERP_POSTER} <= set(TOPOLOGY.stages)
    p0 = TOPOLOGY.consumer("mapper-p0")
    assert p0.filter_subjects == ("validated.*.*.*.*.p0", "validated.*.*.*.*")
    assert TOPOLOGY.consumer("mapper-p5").filter_subjects == ("validated.*.*.*.*.p5",)
    whole = as_whole(MAPPER)
    assert (whole.durable, whole.filter_subjects, whole.partition) == (
        MAPPER,
        ("validated.>",),
        None,
    )
