"""Reading a window of a stream (real JetStream): its end is fixed when reading starts, its
size is known before, an empty one costs no wait, and reading leaves no consumer behind."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

from nats.js import JetStreamContext

from carebus_shared.jetstream.window import Window, measure, read_span, read_window


async def _stream(js: JetStreamContext) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    await js.add_stream(name=f"W_{tag}", subjects=[f"w{tag}.>"])
    return f"W_{tag}", f"w{tag}"


async def _put(js: JetStreamContext, prefix: str, *tokens: str) -> None:
    for token in tokens:
        await js.publish(f"{prefix}.{token}", token.encode())


async def _read(js: JetStreamContext, stream: str, subject: str, window: Window) -> list[str]:
    return [msg.data.decode() async for msg in read_window(js, stream, subject, window)]


async def test_a_window_ends_where_the_stream_ended_when_reading_started(
    js: JetStreamContext,
) -> None:
    stream, prefix = await _stream(js)
    await _put(js, prefix, "a", "b", "c", "d")
    span = await measure(js, stream, f"{prefix}.>", Window(from_seq=2))
    assert (span.end_seq, span.count) == (4, 3)
    seen = []
    async for msg in read_span(js, span, batch=1):
        seen.append(msg.data.decode())
        # Written meanwhile on the same subjects (live traffic, or a replay's own copies).
        await _put(js, prefix, f"new-{msg.data.decode()}")
    assert seen == ["b", "c", "d"]

    # Also when the stream's last message is not on the subjects read.
    stream, prefix = await _stream(js)
    await _put(js, prefix, "x.1", "y.2")
    span = await measure(js, stream, f"{prefix}.x.*", Window(from_seq=1))
    assert (span.end_seq, span.count) == (2, 1)
    seen = []
    async for msg in read_span(js, span, batch=1):
        seen.append(msg.data.decode())
        await _put(js, prefix, "x.3")
    assert seen == ["x.1"]


async def test_a_window_by_sequence_time_and_subject(js: JetStreamContext) -> None:
    stream, prefix = await _stream(js)
    await _put(js, prefix, "x.1", "y.2", "x.3")
    await asyncio.sleep(0.05)
    between = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.05)
    await _put(js, prefix, "x.4", "y.5", "x.6")
    every = f"{prefix}.>"
    assert await _read(js, stream, every, Window(from_seq=2, to_seq=4)) == ["y.2", "x.3", "x.4"]
    assert await _read(js, stream, every, Window(since=between)) == ["x.4", "y.5", "x.6"]
    early = between - dt.timedelta(minutes=1)
    assert await _read(js, stream, every, Window(since=early, until=between)) == [
        "x.1",
        "y.2",
        "x.3",
    ]
    assert await _read(js, stream, f"{prefix}.x", Window(from_seq=1)) == []
    only_x = f"{prefix}.x.*"
    assert await _read(js, stream, only_x, Window(from_seq=1)) == ["x.1", "x.3", "x.4", "x.6"]
    assert await _read(js, stream, only_x, Window(from_seq=2, limit=2)) == ["x.3", "x.4"]
    span = await measure(js, stream, only_x, Window(since=early, until=between))
    assert span.count == 2


async def test_an_empty_window_is_known_empty_at_once(js: JetStreamContext) -> None:
    stream, prefix = await _stream(js)
    started = time.monotonic()
    assert await _read(js, stream, f"{prefix}.>", Window(from_seq=1)) == []
    await _put(js, prefix, "a")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert await _read(js, stream, f"{prefix}.>", Window(from_seq=5)) == []
    assert await _read(js, stream, f"{prefix}.>", Window(since=later)) == []
    assert await _read(js, stream, f"{prefix}.nothing", Window(from_seq=1)) == []
    assert time.monotonic() - started < 2.0


async def test_reading_leaves_no_consumer_behind(js: JetStreamContext) -> None:
    stream, prefix = await _stream(js)
    await _put(js, prefix, "a", "b", "c")
    assert await _read(js, stream, f"{prefix}.>", Window(from_seq=1)) == ["a", "b", "c"]
    async for _ in read_window(js, stream, f"{prefix}.>", Window(from_seq=1)):
        break  # a reader that stops early
    await asyncio.sleep(0.1)  # the abandoned generator is closed by the loop
    assert await js.consumers_info(stream) == []
