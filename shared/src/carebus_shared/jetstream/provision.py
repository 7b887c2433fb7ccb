"""Apply the topology to a JetStream server idempotently, and report what changed.

Each stream, consumer and bucket ends in one of: ``created``, ``updated`` (with the fields
that had drifted), or ``unchanged``. Running it twice in a row reports nothing changed.

An ordered stage provisioned before partitions has one durable named after the stage; its
partition durables are created to start just after that durable's ack floor (deliver by
start sequence), so nothing it had not acknowledged is skipped and nothing it had is read
again, and then it is deleted (``deleted``; docs/decisions/030). Stop the stage's old
replicas first: what they hold unacknowledged is delivered again through the partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError

from carebus_shared.jetstream.topology import ConsumerSpec, KeyValueSpec, StreamSpec, Topology


@dataclass(frozen=True)
class Change:
    kind: str  # stream | consumer | kv
    name: str
    action: str  # created | updated | unchanged
    drift: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.drift)})" if self.drift else ""
        return f"{self.kind:8} {self.name:40} {self.action}{detail}"


def stream_config(spec: StreamSpec, replicas: int) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy.LIMITS,  # replayable: consumers never delete messages
        storage=api.StorageType.FILE,
        num_replicas=replicas,
        max_age=spec.max_age_s,
        duplicate_window=spec.duplicate_window_s,
        discard=api.DiscardPolicy.OLD,
    )


def consumer_config(spec: ConsumerSpec, start_seq: int | None = None) -> api.ConsumerConfig:
    """``start_seq``: the stream sequence to start at (a migrated stage's partitions)."""
    return api.ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=api.DeliverPolicy.ALL
        if start_seq is None
        else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=api.AckPolicy.EXPLICIT,
        backoff=list(spec.backoff_s),
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subjects=list(spec.filter_subjects),
    )


def _drift(desired: dict[str, Any], actual: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    drift = []
    for name in fields:
        want, have = desired.get(name), actual.get(name)
        if isinstance(want, list):
            want, have = sorted(want), sorted(have or [])
        if want != have:
            drift.append(f"{name}: {have!r} -> {want!r}")
    return drift


STREAM_FIELDS = ("subjects", "max_age", "duplicate_window", "num_replicas", "description")
CONSUMER_FIELDS = ("backoff", "max_deliver", "max_ack_pending", "filter_subjects", "description")


async def apply_stream(js: JetStreamContext, spec: StreamSpec, replicas: int) -> Change:
    desired = stream_config(spec, replicas)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(desired)
        return Change("stream", spec.name, "created")
    drift = _drift(desired.as_dict(), info.config.as_dict(), STREAM_FIELDS)
    if not drift:
        return Change("stream", spec.name, "unchanged")
    await js.update_stream(desired)
    return Change("stream", spec.name, "updated", tuple(drift))


async def apply_consumer(
    js: JetStreamContext, spec: ConsumerSpec, start_seq: int | None = None
) -> Change:
    desired = consumer_config(spec)
    name = f"{spec.stream}/{spec.durable}"
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, consumer_config(spec, start_seq))
        detail = () if start_seq is None else (f"from stream sequence {start_seq}",)
        return Change("consumer", name, "created", detail)
    drift = _drift(desired.as_dict(), info.config.as_dict(), CONSUMER_FIELDS)
    if not drift:
        return Change("consumer", name, "unchanged")
    # add_consumer with an existing durable name updates the mutable fields in place.
    await js.add_consumer(spec.stream, desired)
    return Change("consumer", name, "updated", tuple(drift))


async def apply_key_value(js: JetStreamContext, spec: KeyValueSpec, replicas: int) -> Change:
    try:
        await js.key_value(spec.bucket)
        return Change("kv", spec.bucket, "unchanged")
    except BucketNotFoundError:
        await js.create_key_value(
            api.KeyValueConfig(
                bucket=spec.bucket,
                description=spec.description,
                history=spec.history,
                storage=api.StorageType.FILE,
                replicas=replicas,
                ttl=spec.ttl_s,
            )
        )
        return Change("kv", spec.bucket, "created")


async def _unpartitioned(js: JetStreamContext, topology: Topology) -> dict[tuple[str, str], int]:
    """(stream, durable) of each partitioned stage's durable from before partitions that is
    still there, with the stream sequence its partitions start at (after its ack floor)."""
    found = {}
    durables = {spec.durable for spec in topology.consumers}
    for stream, group in dict.fromkeys((c.stream, c.group) for c in topology.consumers if c.group):
        if group in durables:
            continue
        try:
            info = await js.consumer_info(stream, group)
        except NotFoundError:
            continue
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        found[(stream, group)] = (floor or 0) + 1
    return found


async def provision(js: JetStreamContext, topology: Topology, replicas: int = 1) -> list[Change]:
    """Create or update everything in ``topology``; streams first, since consumers need them."""
    changes = [await apply_stream(js, spec, replicas) for spec in topology.streams]
    unpartitioned = await _unpartitioned(js, topology)
    changes += [
        await apply_consumer(js, spec, unpartitioned.get((spec.stream, spec.group)))
        for spec in topology.consumers
    ]
    for stream, durable in unpartitioned:  # its partitions now start where it stopped
        await js.delete_consumer(stream, durable)
        changes.append(Change("consumer", f"{stream}/{durable}", "deleted", ("partitioned",)))
    changes += [await apply_key_value(js, spec, replicas) for spec in topology.key_values]
    return changes
