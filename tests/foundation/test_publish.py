"""Confirmed, pipelined publishing against a real JetStream."""

from __future__ import annotations

import uuid

import pytest
from nats.js import JetStreamContext

from carebus_shared.jetstream.publish import Outgoing, PublishFailed, publish_confirmed


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
