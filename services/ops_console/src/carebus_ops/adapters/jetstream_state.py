"""Consumer and stream state from JetStream, for every durable and stream of the topology."""

from __future__ import annotations

import datetime as dt

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_ops.adapters.metrics import ConsumerState, JetStreamState, StreamState
from carebus_shared.jetstream.topology import OPS_TRACKED_STREAMS, Topology, ops_tracker

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
    for spec in topology.consumers:
        try:
            ci = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            continue
        pending, ack_pending = int(ci.num_pending or 0), int(ci.num_ack_pending or 0)
        age = 0.0
        if pending or ack_pending:
            floor = ci.ack_floor.stream_seq if ci.ack_floor else 0
            ages = [
                await _oldest_unacked_age(js, spec.stream, subject, floor, now)
                for subject in spec.filter_subjects
            ]
            age = max(ages, default=0.0)
        state.consumers.append(
            ConsumerState(
                stream=spec.stream,
                consumer=spec.durable,
                pending=pending,
                ack_pending=ack_pending,
                redelivered=int(ci.num_redelivered or 0),
                oldest_unacked_age_s=age,
                # Its own durables only: the outbound feeds are off the pipeline too.
                tracker=spec.durable in _TRACKERS,
            )
        )
    return state
