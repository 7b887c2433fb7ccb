"""Pull requests on a durable consumer (``pull.Puller``) against a real JetStream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import api

from carebus_shared.jetstream import pull
from carebus_shared.jetstream.pull import Puller


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def puller(nc: Client) -> AsyncIterator[Puller]:
    tag = uuid.uuid4().hex[:8]
    js = nc.jetstream()
    await js.add_stream(name=f"PULL_{tag}", subjects=[f"pull{tag}.>"])
    await js.add_consumer(
        f"PULL_{tag}", api.ConsumerConfig(durable_name="d", ack_policy=api.AckPolicy.EXPLICIT)
    )
    p = Puller(nc, f"PULL_{tag}", "d")
    await p.start()
    yield p
    await p.stop()


async def _publish(nc: Client, puller: Puller, n: int, start: int = 0) -> None:
    subject = f"{puller.stream.lower().replace('_', '')}.x"
    for i in range(start, start + n):
        await nc.jetstream().publish(subject, f"m{i}".encode())


@pytest.fixture
def no_margin_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the server's answer may end a pull (a test hangs, bounded, if it does not)."""
    monkeypatch.setattr(pull, "ANSWER_MARGIN_S", 600.0)


@pytest.mark.usefixtures("no_margin_fallback")
async def test_no_wait_pull_returns_what_is_waiting(nc: Client, puller: Puller) -> None:
    async with asyncio.timeout(20):
        assert await puller.pull(10, None) == []  # ended by the server's 404
        await _publish(nc, puller, 3)
        got = await puller.pull(10, None)  # ended by the server's status after three
    assert [m.data for m in got] == [b"m0", b"m1", b"m2"]


@pytest.mark.usefixtures("no_margin_fallback")
async def test_a_full_batch_returns_before_the_pull_expires(nc: Client, puller: Puller) -> None:
    await _publish(nc, puller, 5)
    async with asyncio.timeout(20):
        got = await puller.pull(3, 300.0)
    assert [m.data for m in got] == [b"m0", b"m1", b"m2"]


@pytest.mark.usefixtures("no_margin_fallback")
async def test_a_lingering_pull_takes_what_arrives_until_it_expires(
    nc: Client, puller: Puller
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await _publish(nc, puller, 2)

    sender = asyncio.create_task(later())
    async with asyncio.timeout(20):
        got = await puller.pull(10, 1.0)  # ended by the server's 408
    await sender
    assert [m.data for m in got] == [b"m0", b"m1"]


async def test_a_late_delivery_joins_the_next_pull_and_acks_work(
    nc: Client, puller: Puller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client stops waiting long before the server's request expires: what the server
    # delivers to that request afterwards must not be lost until its ack deadline.
    monkeypatch.setattr(pull, "ANSWER_MARGIN_S", -1.9)
    assert await puller.pull(5, 2.0) == []
    await _publish(nc, puller, 1)
    monkeypatch.setattr(pull, "ANSWER_MARGIN_S", 600.0)
    async with asyncio.timeout(20):
        got: list[bytes] = []
        while not got:  # bounded by the timeout
            batch = await puller.pull(5, 0.2)
            for msg in batch:
                await msg.ack()
            got += [m.data for m in batch]
    assert got == [b"m0"]
    for _ in range(200):  # the server takes the ack in its own time (bounded: 10 s)
        pending = (await nc.jetstream().consumer_info(puller.stream, "d")).num_ack_pending
        if not pending:
            break
        await asyncio.sleep(0.05)
    assert not pending
