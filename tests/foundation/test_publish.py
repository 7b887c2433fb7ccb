"""Confirmed, pipelined publishing against a real JetStream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from nats.js import JetStreamContext

from carebus_shared.jetstream.publish import (
    ConfirmedStream,
    Outgoing,
    PublishFailed,
    Tally,
    publish_confirmed,
)


@pytest.fixture
async def subject(js: JetStreamContext) -> str:
    tag = uuid.uuid4().hex[:8]
    await js.add_stream(name=f"PUB_{tag}", subjects=[f"pub{tag}.>"], duplicate_window=120)
    return f"pub{tag}.x"


async def test_every_publish_is_confirmed_in_order(js: JetStreamContext, subject: str) -> None:
    messages = [Outgoing(subject, f"event {i}".encode(), f"id-{i}") for i in range(300)]
    acks = await publish_confirmed(js, messages)
    assert [ack.seq for ack in acks] == list(range(1, 301))
    assert not any(ack.duplicate for ack in acks)
    stored = await js.get_msg(acks[0].stream, 42)
    assert stored.data == b"event 41"
    assert (stored.headers or {})["Nats-Msg-Id"] == "id-41"


async def test_a_republished_id_is_confirmed_as_a_duplicate(
    js: JetStreamContext, subject: str
) -> None:
    first = await publish_confirmed(js, [Outgoing(subject, b"a", "same-id")])
    again = await publish_confirmed(
        js, [Outgoing(subject, b"a", "same-id"), Outgoing(subject, b"b", "other-id")]
    )
    assert again[0].duplicate
    assert again[0].seq == first[0].seq
    assert not again[1].duplicate
    assert again[1].seq == first[0].seq + 1


async def test_a_subject_no_stream_takes_fails_at_once(js: JetStreamContext) -> None:
    with pytest.raises(PublishFailed, match="status 503"):
        await publish_confirmed(js, [Outgoing("nostream.anywhere", b"x", "x-1")], 30.0)


async def test_a_refused_publish_fails_with_the_servers_reason(
    js: JetStreamContext, subject: str
) -> None:
    # An expected-stream header naming another stream: JetStream answers with an API error.
    refused = Outgoing(subject, b"x", "x-2", headers={"Nats-Expected-Stream": "ELSEWHERE"})
    with pytest.raises(PublishFailed, match="1 of 2 publishes failed"):
        await publish_confirmed(js, [Outgoing(subject, b"ok", "x-3"), refused])


async def test_a_stream_keeps_order_and_bounds_what_is_unconfirmed(
    js: JetStreamContext, subject: str
) -> None:
    stream = ConfirmedStream(js, window=64)
    most = 0

    def messages(start: int, count: int) -> Iterator[Outgoing]:
        nonlocal most
        for i in range(start, start + count):
            most = max(most, stream.in_flight)
            yield Outgoing(subject, f"event {i}".encode(), f"s-{i}")

    for start in range(0, 1000, 250):  # a file's chunks
        await stream.publish(messages(start, 250))
    tally = await stream.confirmed()
    assert (tally.published, tally.duplicates) == (1000, 0)
    assert 32 <= most <= 64
    assert stream.in_flight == 0
    info = await js.stream_info(f"PUB_{subject.split('.')[0].removeprefix('pub')}")
    assert info.state.messages == 1000
    last = await js.get_msg(info.config.name, 1000)
    assert last.data == b"event 999"

    again = ConfirmedStream(js, window=64)
    await again.publish(messages(900, 200))  # 100 sent before, 100 new
    assert await again.confirmed() == Tally(published=100, duplicates=100)


async def test_a_stream_that_failed_sends_nothing_more(js: JetStreamContext, subject: str) -> None:
    stream = ConfirmedStream(js, window=4)
    refused = Outgoing(subject, b"x", "f-2", headers={"Nats-Expected-Stream": "ELSEWHERE"})
    ok = [Outgoing(subject, b"ok", f"f-{i}") for i in range(3, 9)]
    with pytest.raises(PublishFailed, match="refused"):  # found when the window was full
        await stream.publish([Outgoing(subject, b"ok", "f-1"), refused, *ok])
    with pytest.raises(PublishFailed, match="an earlier publish"):
        await stream.publish([Outgoing(subject, b"late", "f-9")])
    with pytest.raises(PublishFailed, match="an earlier publish"):
        await stream.confirmed()
