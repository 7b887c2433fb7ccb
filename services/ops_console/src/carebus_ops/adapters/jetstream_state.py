"""Consumer and stream state from JetStream, for every stage and stream of the topology."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_ops.adapters.metrics import ConsumerState, JetStreamState, StreamState
from carebus_shared.jetstream.topology import (
    OPS_TRACKED_STREAMS,
    ConsumerSpec,
    Topology,
    ops_tracker,
)

_TRACKERS = frozenset(ops_tracker(stream) for stream in OPS_TRACKED_STREAMS)


async def _oldest_unacked_age(
    js: JetStreamContext, stream: str, filter_subject: str, floor: int, now: dt.datetime
) -> float:
    """Age of the first message after the consumer's ack floor that it reads (0: none)."""
    try:
        msg = await js.get_msg(stream, seq=floor + 1, subject=filter_subject, next=True)
    except NotFoundError:
        return 0.0
    if msg.time is None:
        return 0.0
    return max(0.0, (now - msg.time).total_seconds())


async def read_state(js: JetStreamContext, topology: Topology) -> JetStreamState:
    state = JetStreamState()
    now = dt.datetime.now(dt.UTC)
    for stream in topology.streams:
        try:
            info = await js.stream_info(stream.name)
        except NotFoundError:
            continue  # not provisioned: nothing to report
        state.streams.append(StreamState(stream.name, info.state.messages, info.state.bytes))
    for stage in topology.stages:  # an ordered stage's partitions summed (ADR 030)
        found = await _stage_state(js, topology.stage(stage), now)
        if found is not None:
            state.consumers.append(found)
    return state


async def _stage_state(
    js: JetStreamContext, specs: Sequence[ConsumerSpec], now: dt.datetime
) -> ConsumerState | None:
    """One stage's backlog over its durables (one, or one per partition); None when none
    is provisioned."""
    pending = ack_pending = redelivered = 0
    age, seen = 0.0, False
    for spec in specs:
        try:
            ci = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            continue
        seen = True
        waiting, out = int(ci.num_pending or 0), int(ci.num_ack_pending or 0)
        pending, ack_pending = pending + waiting, ack_pending + out
        redelivered += int(ci.num_redelivered or 0)
        if waiting or out:
            floor = ci.ack_floor.stream_seq if ci.ack_floor else 0
            ages = [
                await _oldest_unacked_age(js, spec.stream, subject, floor, now)
                for subject in spec.filter_subjects
            ]
            age = max(age, *ages)
    if not seen:
        return None
    first = specs[0]
    return ConsumerState(
        stream=first.stream,
        consumer=first.stage,
        pending=pending,
        ack_pending=ack_pending,
        redelivered=redelivered,
        oldest_unacked_age_s=age,
        # Its own durables only: the outbound feeds are off the pipeline too.
        tracker=first.durable in _TRACKERS,
    )
