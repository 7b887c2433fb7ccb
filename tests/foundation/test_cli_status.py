"""`carebus status` sums an ordered stage's partitions and says who holds them
(docs/decisions/030): an operator sees one line per stage, not six durables to add up."""

from __future__ import annotations

import uuid

from nats.js import JetStreamContext

from carebus_contracts.subjects import PARTITIONS, partition_token
from carebus_shared.cli.status import stage_lines
from carebus_shared.jetstream.lease import Lease
from carebus_shared.jetstream.provision import apply_key_value, consumer_config
from carebus_shared.jetstream.topology import (
    ORDERED_IN_FLIGHT,
    STAGE_LEASES_BUCKET,
    TOPOLOGY,
    ConsumerSpec,
    StreamSpec,
    Topology,
)


def _topology(stream: str, subject: str) -> Topology:
    ordered = tuple(
        ConsumerSpec(
            stream,
            f"stage-{partition_token(p)}",
            (f"{subject}.*.{partition_token(p)}",),
            "test",
            max_ack_pending=ORDERED_IN_FLIGHT,
            ordered=True,
            group="stage",
            partition=p,
        )
        for p in range(PARTITIONS)
    )
    shared = ConsumerSpec(stream, "poster", (f"{subject}.>",), "test")
    never_provisioned = ConsumerSpec(stream, "absent", (f"{subject}.>",), "test")
    return Topology(
        (StreamSpec(stream, (f"{subject}.>",), "test", 3600.0),),
        (*ordered, shared, never_provisioned),
    )


async def test_a_stage_line_sums_its_partitions_and_names_its_lease_holders(
    js: JetStreamContext,
) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"CLISTATUS_{tag}", f"clistatus.{tag}"
    topology = _topology(stream, subject)
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    for spec in topology.consumers[:-1]:
        await js.add_consumer(stream, consumer_config(spec))
    await apply_key_value(js, TOPOLOGY.key_value(STAGE_LEASES_BUCKET), 1)
    # Two messages in partition 0, one in partition 3: 3 pending for the stage and the poster.
    for p in (0, 0, 3):
        await js.publish(f"{subject}.S1.{partition_token(p)}", b"{}")
    leases = [
        Lease(stream, spec.durable, holder="replica-a" if p < 4 else "replica-b")
        for p, spec in enumerate(topology.consumers[:5])
    ]
    try:
        for lease in leases:
            assert await lease.acquire(js)
        assert await leases[0].holder_now(js) == "replica-a"
        assert await Lease(stream, topology.consumers[5].durable).holder_now(js) is None

        lines = await stage_lines(js, topology)
    finally:
        for lease in leases:
            await lease.release(js)

    stage = next(line for line in lines if line.startswith("stage "))
    assert stage.split()[1:4] == ["6", "3", "0"]
    assert stage.endswith("5 of 6 held by 2 replicas")
    poster = next(line for line in lines if line.startswith("poster "))
    assert poster.split()[1:4] == ["1", "3", "0"]
    assert poster.endswith("-")
    absent = next(line for line in lines if line.startswith("absent "))
    assert "missing (run `carebus provision`)" in absent
    # The per-consumer table still lists every durable, the unprovisioned one as missing.
    assert f"{stream}/stage-p3" in "\n".join(lines)
    assert any(line.startswith(f"{stream}/absent") and "missing" in line for line in lines)
    # Released leases are free again: nobody is named.
    assert await leases[0].holder_now(js) is None


async def test_every_stage_of_the_real_topology_gets_a_line(js: JetStreamContext) -> None:
    lines = await stage_lines(js)
    header = lines.index("") if "" in lines else len(lines)
    named = [line.split()[0] for line in lines[1:header]]
    assert named == list(TOPOLOGY.stages)
