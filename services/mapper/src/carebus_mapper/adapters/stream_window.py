"""Reading a window of a recorded stream, in order, with an ephemeral ordered consumer.

An ordered consumer is created by the server for this reader only, acknowledges nothing
and disappears when we unsubscribe: reading leaves no trace on the stream or on the
durable consumers the services use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api


@dataclass(frozen=True)
class Window:
    from_seq: int | None = None
    to_seq: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 1_000_000

    def __post_init__(self) -> None:
        if self.from_seq is not None and self.since is not None:
            raise ValueError("give a start sequence or a start time, not both")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a zone, e.g. 2025-03-10T00:00:00Z")


def _config(window: Window) -> api.ConsumerConfig:
    if window.since is not None:
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=window.since
        )
    if window.from_seq is not None:
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=window.from_seq
        )
    return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)


async def read_window(
    js: JetStreamContext, stream: str, subject: str, window: Window, idle_timeout_s: float = 5.0
) -> AsyncIterator[Msg]:
    """Yield the messages of ``stream`` in ``window``, in stream order, then stop.

    Stops at the window's end, at the stream's end (no message pending), after ``limit``
    messages, or when nothing arrives for ``idle_timeout_s``.
    """
    info = await js.stream_info(stream)
    last = info.state.last_seq
    if info.state.messages == 0 or (window.from_seq is not None and window.from_seq > last):
        return
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, config=_config(window))
    try:
        for _ in range(window.limit):
            try:
                msg = await sub.next_msg(timeout=idle_timeout_s)
            except TimeoutError:  # nats.errors.TimeoutError is one
                return
            meta = msg.metadata
            if window.to_seq is not None and meta.sequence.stream > window.to_seq:
                return
            if window.until is not None and meta.timestamp > window.until:
                return
            yield msg
            if meta.num_pending == 0 or meta.sequence.stream >= last:
                return
    finally:
        await _remove(js, stream, sub)


async def _remove(
    js: JetStreamContext, stream: str, sub: JetStreamContext.PushSubscription
) -> None:
    """Delete the ephemeral consumer now rather than when the server notices it is idle."""
    try:
        name = (await sub.consumer_info()).name
        await sub.unsubscribe()
        await js.delete_consumer(stream, name)
    except (nats.errors.Error, nats.js.errors.Error):
        pass  # already gone; the server removes idle ephemeral consumers anyway
