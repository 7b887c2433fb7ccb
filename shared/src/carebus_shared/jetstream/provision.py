"""Apply the topology to a JetStream server idempotently, and report what changed.

Each stream, consumer and bucket ends in one of: ``created``, ``updated`` (with the fields
that had drifted), or ``unchanged``. Running it twice in a row reports nothing changed.
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


def consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=api.DeliverPolicy.ALL,
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


async def apply_consumer(js: JetStreamContext, spec: ConsumerSpec) -> Change:
    desired = consumer_config(spec)
    name = f"{spec.stream}/{spec.durable}"
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, desired)
        return Change("consumer", name, "created")
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


async def provision(js: JetStreamContext, topology: Topology, replicas: int = 1) -> list[Change]:
    """Create or update everything in ``topology``; streams first, since consumers need them."""
    changes = [await apply_stream(js, spec, replicas) for spec in topology.streams]
    changes += [await apply_consumer(js, spec) for spec in topology.consumers]
    changes += [await apply_key_value(js, spec, replicas) for spec in topology.key_values]
    return changes
