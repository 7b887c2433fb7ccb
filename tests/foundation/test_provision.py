"""Provisioning is idempotent and reports drift."""

from __future__ import annotations

import dataclasses

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_contracts import subjects as s
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.provision import consumer_config, provision
from carebus_shared.jetstream.topology import (
    MAPPER,
    TOPOLOGY,
    ConsumerSpec,
    Topology,
    partition_durable,
    partitions_of,
)

MAPPER_P0 = partition_durable(MAPPER, 0)


async def test_provisioning_twice_changes_nothing_the_second_time(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    second = await provision(js, TOPOLOGY)
    assert second, "provision reported nothing"
    assert {c.action for c in second} == {"unchanged"}
    names = {c.name for c in second}
    assert {"SCHEDULING", "ERP", "VALIDATED/mapper-p0", "VALIDATED/mapper-p5"} <= names
    assert "masterdata_view" in names


async def test_streams_are_file_backed_and_deduplicating(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    info = await js.stream_info("SCHEDULING")
    assert info.config.storage == "file"
    assert info.config.duplicate_window == 24 * 3600
    consumer = await js.consumer_info("VALIDATED", MAPPER_P0)
    assert consumer.config.max_deliver == TOPOLOGY.consumer(MAPPER_P0).max_deliver
    assert consumer.config.ack_policy == "explicit"


async def test_drift_is_reported_and_repaired(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    # Someone changes a consumer by hand...
    spec = TOPOLOGY.consumer(MAPPER_P0)
    tampered = consumer_config(dataclasses.replace(spec, max_deliver=7))
    await js.add_consumer(spec.stream, tampered)
    changes = await provision(js, TOPOLOGY)
    updated = [c for c in changes if c.action == "updated"]
    assert [c.name for c in updated] == ["VALIDATED/mapper-p0"]
    assert any(d.startswith("max_deliver: 7 -> 10") for d in updated[0].drift)
    assert (await js.consumer_info(spec.stream, spec.durable)).config.max_deliver == 10


async def test_changed_stream_setting_is_updated_in_place(js: JetStreamContext) -> None:
    base = Topology(streams=(TOPOLOGY.stream("BILLING"),), consumers=())
    await provision(js, base)
    longer = dataclasses.replace(base.streams[0], max_age_s=base.streams[0].max_age_s * 2)
    changes = await provision(js, Topology(streams=(longer,), consumers=()))
    assert changes[0].action == "updated"
    assert changes[0].drift[0].startswith("max_age:")
    await provision(js, base)  # leave the shared server as the topology says


async def test_an_unpartitioned_durable_is_migrated_to_partitions_after_its_ack_floor(
    private_nats: NatsServer,
) -> None:
    """The durable of before partitions: its partitions start just after what it
    acknowledged (nothing skipped, nothing read twice), then it is gone (ADR 030)."""
    nc = await nats.connect(private_nats.url)
    try:
        js = nc.jetstream()
        stream = TOPOLOGY.stream(s.STREAM_VALIDATED)
        await provision(js, Topology(streams=(stream,), consumers=()))
        old = ConsumerSpec(
            s.STREAM_VALIDATED,
            MAPPER,
            (s.STREAM_SUBJECTS[s.STREAM_VALIDATED],),
            "before",
            ordered=True,
        )
        await js.add_consumer(old.stream, consumer_config(old))
        for n in range(4):  # stored before partitions: five tokens
            await js.publish(f"validated.charge.posted.v1.SITE{n}", f"old {n}".encode())
        sub = await js.pull_subscribe_bind(MAPPER, stream=old.stream)
        for msg in await sub.fetch(3, timeout=5):  # two acknowledged, the third still out
            if msg.data != b"old 2":
                await msg.ack()
        await sub.unsubscribe()
        fresh = {p: f"validated.charge.posted.v1.SITE01.{s.partition_token(p)}" for p in (0, 4)}
        for p, subject in fresh.items():
            await js.publish(subject, f"new {p}".encode())

        changes = await provision(js, TOPOLOGY_VALIDATED)
        assert ("VALIDATED/mapper", "deleted") in {(c.name, c.action) for c in changes}
        created = [c for c in changes if c.action == "created"]
        assert {c.name for c in created} == {f"VALIDATED/{d}" for d in partitions_of(MAPPER)}
        assert all(c.drift == ("from stream sequence 3",) for c in created)
        try:
            await js.consumer_info(old.stream, MAPPER)
            raise AssertionError("the unpartitioned durable is still there")
        except NotFoundError:
            pass

        got: dict[str, list[bytes]] = {}
        for durable in partitions_of(MAPPER):
            sub = await js.pull_subscribe_bind(durable, stream=old.stream)
            try:
                msgs = await sub.fetch(10, timeout=0.5)
            except TimeoutError:
                msgs = []
            got[durable] = [m.data for m in msgs]
            await sub.unsubscribe()
        # Partition 0 reads what was stored before partitions, from the unacknowledged on.
        assert got[partition_durable(MAPPER, 0)] == [b"old 2", b"old 3", b"new 0"]
        assert got[partition_durable(MAPPER, 4)] == [b"new 4"]
        assert sum(len(v) for v in got.values()) == 4

        again = await provision(js, TOPOLOGY_VALIDATED)
        assert {c.action for c in again} == {"unchanged"}
    finally:
        await nc.close()


TOPOLOGY_VALIDATED = Topology(
    streams=(TOPOLOGY.stream(s.STREAM_VALIDATED),), consumers=TOPOLOGY.stage(MAPPER)
)
