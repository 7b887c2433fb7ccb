"""The tracker's fetch pacing (issue #21): after a batch short of the batch size it waits
before fetching again, so a tracker that keeps up stores fewer, fuller batches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.entrypoints import subscribers
from carebus_ops.handlers.track import Tracker


def _no_pool() -> asyncpg.Pool:
    raise AssertionError("the recording tracker stores nothing")


class _Recording(Tracker):
    def __init__(self) -> None:
        super().__init__(_no_pool, OpsMetrics(CollectorRegistry()))
        self.handled: list[tuple[str, int]] = []

    async def handle(self, stream: str, msgs: Sequence[Msg]) -> None:
        self.handled.append((stream, len(msgs)))


async def test_a_short_batch_is_followed_by_the_linger_a_full_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(delay: float, *_: Any) -> None:
        slept.append(delay)

    tracker = _Recording()
    on_batch = subscribers.tracker_batches(tracker, "BILLING", batch_size=3, linger_s=0.25)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    msgs: list[Any] = [object(), object(), object()]
    await on_batch(msgs)
    assert slept == []
    await on_batch(msgs[:1])
    assert slept == [0.25]
    assert tracker.handled == [("BILLING", 3), ("BILLING", 1)]
