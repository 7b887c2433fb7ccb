"""Reading a window of a recorded stream, in order, with an ephemeral consumer.

The consumer is created for this reader only, acknowledges nothing and is deleted when the
reading ends (or dropped by the server once idle): reading leaves no trace on the stream or
on the durable consumers the services use.

A window is measured before it is read (``measure``): its last possible sequence is the
stream's last when reading starts, so what is written meanwhile (live traffic, or a
replay's own copies on the same subjects) is never read; and how many messages it holds
comes from two pull consumers that are created, asked and deleted (never pulled), so an
empty window costs no idle wait and a reader that stops short of the end is an error, not
a silent early end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from carebus_shared.jetstream.pull import Puller

# The counting consumers are deleted at once; should that fail, the server drops them after
# this long idle.
_COUNTER_IDLE_S = 60.0
_AFTER = dt.timedelta(microseconds=1)


class WindowStalled(RuntimeError):
    """The stream stopped delivering before the window's end (a lost connection, a server
    restart): what was read is not the whole window."""


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
        if self.from_seq is not None and self.from_seq < 1:
            raise ValueError("stream sequences start at 1")
        if self.from_seq is not None and self.to_seq is not None and self.to_seq < self.from_seq:
            raise ValueError("the last sequence is before the first")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("the end time is before the start time")
        if self.limit < 1:
            raise ValueError("the limit must be at least 1")


@dataclass(frozen=True)
class Span:
    """A window of one stream as measured: ``end_seq`` is the last sequence that can belong
    to it, ``count`` how many messages on ``subject`` it holds (exact while nothing expires;
    never less than what is there)."""

    stream: str
    subject: str
    window: Window
    end_seq: int
    count: int


def _start(window: Window) -> api.ConsumerConfig:
    if window.since is not None:
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=window.since
        )
    if window.from_seq is not None:
        return _from_seq(window.from_seq)
    return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)


def _from_seq(seq: int) -> api.ConsumerConfig:
    return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq)


async def _pending(
    js: JetStreamContext, stream: str, subject: str, start: api.ConsumerConfig
) -> int:
    """How many messages on ``subject`` lie from ``start`` to the stream's end right now."""
    config = api.ConsumerConfig(
        deliver_policy=start.deliver_policy,
        opt_start_seq=start.opt_start_seq,
        opt_start_time=start.opt_start_time,
        filter_subject=subject,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=_COUNTER_IDLE_S,
        mem_storage=True,
        num_replicas=1,
    )
    info = await js.add_consumer(stream, config)
    try:
        return int(info.num_pending or 0)
    finally:
        with contextlib.suppress(nats.errors.Error):  # the server removes it once idle
            await js.delete_consumer(stream, info.name)


async def measure(js: JetStreamContext, stream: str, subject: str, window: Window) -> Span:
    """The window's end and size now. What lies after the window is counted first, so that
    messages written between the two counts can only make ``count`` larger, never smaller."""
    state = (await js.stream_info(stream)).state
    end = state.last_seq if window.to_seq is None else min(window.to_seq, state.last_seq)
    start = window.from_seq if window.from_seq is not None else state.first_seq
    if state.messages == 0 or start > end:
        return Span(stream, subject, window, end, 0)
    after_end = await _pending(js, stream, subject, _from_seq(end + 1))
    if window.until is not None:  # the first message after `until` may come before end + 1
        after_until = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=window.until + _AFTER
        )
        after_end = max(after_end, await _pending(js, stream, subject, after_until))
    from_start = await _pending(js, stream, subject, _start(window))
    return Span(stream, subject, window, end, max(0, from_start - after_end))


async def read_span(
    js: JetStreamContext,
    span: Span,
    *,
    headers_only: bool = False,
    batch: int = 500,
    patience: int = 3,
) -> AsyncIterator[Msg]:
    """Yield the messages of ``span`` in stream order (at most its window's ``limit``), then
    stop. ``headers_only``: the payloads stay on the server (counting needs only subjects).

    Read by pulls of ``batch`` from an ephemeral consumer that acknowledges nothing: 2.5 to 4
    times the rate of nats-py's ordered push consumer (docs/decisions/015). Such a consumer
    never redelivers, so a message lost on the way (a dropped connection) would be a silent
    hole: its delivery sequence shows it, and ``WindowStalled`` is raised, as it is when
    ``patience`` pulls in a row bring nothing before the window's end.
    """
    window = span.window
    remaining = min(window.limit, span.count)
    if remaining == 0:
        return
    config = _start(window)
    consumer = await js.add_consumer(
        span.stream,
        api.ConsumerConfig(
            deliver_policy=config.deliver_policy,
            opt_start_seq=config.opt_start_seq,
            opt_start_time=config.opt_start_time,
            filter_subject=span.subject,
            ack_policy=api.AckPolicy.NONE,
            headers_only=headers_only or None,
            inactive_threshold=_COUNTER_IDLE_S,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    puller = Puller(js._nc, span.stream, consumer.name)
    await puller.start()
    delivered, last_seen, empty = 0, 0, 0
    try:
        for _ in range(remaining + patience):  # each round yields a message or is an empty pull
            msgs = await puller.pull(min(batch, remaining), None)
            if not msgs:
                if await _read_to_end(js, span, consumer.name):
                    return  # fewer than counted: some left the stream (age) meanwhile
                empty += 1
                if empty >= patience:
                    raise WindowStalled(_stalled(span, last_seen))
                continue
            empty = 0
            for msg in msgs:
                meta = msg.metadata
                delivered += 1
                if meta.sequence.consumer != delivered:
                    raise WindowStalled(_stalled(span, last_seen))
                last_seen = meta.sequence.stream
                if last_seen > span.end_seq:
                    return
                if window.until is not None and meta.timestamp > window.until:
                    return
                yield msg
                remaining -= 1
                if remaining == 0 or meta.num_pending == 0 or last_seen >= span.end_seq:
                    return
    finally:
        await puller.stop()
        with contextlib.suppress(nats.errors.Error):  # the server removes it once idle
            await js.delete_consumer(span.stream, consumer.name)


def _stalled(span: Span, last_seen: int) -> str:
    return (
        f"{span.stream}: the window stopped arriving after sequence {last_seen}, before its "
        f"end at {span.end_seq} (connection lost?)"
    )


async def _read_to_end(js: JetStreamContext, span: Span, consumer: str) -> bool:
    """Whether the reading consumer has nothing left up to the window's end."""
    info = await js.consumer_info(span.stream, consumer)
    return not info.num_pending or info.delivered.stream_seq >= span.end_seq


async def read_window(
    js: JetStreamContext, stream: str, subject: str, window: Window
) -> AsyncIterator[Msg]:
    """Yield the messages of ``stream`` on ``subject`` in ``window``, in stream order, then
    stop: at the window's end, at the stream's end when reading started, or after ``limit``
    messages."""
    span = await measure(js, stream, subject, window)
    async for msg in read_span(js, span):
        yield msg
