"""Provisioning is idempotent and reports drift."""

from __future__ import annotations

import dataclasses

from nats.js import JetStreamContext

from carebus_shared.jetstream.provision import consumer_config, provision
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY, Topology


async def test_provisioning_twice_changes_nothing_the_second_time(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    second = await provision(js, TOPOLOGY)
    assert second, "provision reported nothing"
    assert {c.action for c in second} == {"unchanged"}
    names = {c.name for c in second}
    assert {"SCHEDULING", "ERP", "VALIDATED/mapper", "masterdata_view"} <= names


async def test_streams_are_file_backed_and_deduplicating(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    info = await js.stream_info("SCHEDULING")
    assert info.config.storage == "file"
    assert info.config.duplicate_window == 24 * 3600
    consumer = await js.consumer_info("VALIDATED", MAPPER)
    assert consumer.config.max_deliver == TOPOLOGY.consumer(MAPPER).max_deliver
    assert consumer.config.ack_policy == "explicit"


async def test_drift_is_reported_and_repaired(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    # Someone changes a consumer by hand...
    spec = TOPOLOGY.consumer(MAPPER)
    tampered = consumer_config(dataclasses.replace(spec, max_deliver=7))
    await js.add_consumer(spec.stream, tampered)
    changes = await provision(js, TOPOLOGY)
    updated = [c for c in changes if c.action == "updated"]
    assert [c.name for c in updated] == ["VALIDATED/mapper"]
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
