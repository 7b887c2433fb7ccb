"""The fault runs' lag sampler stops when asked, even when a NATS call swallows the cancel
(nats-py's flush catches CancelledError): a CI run hung in a fault's teardown on it."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos import lag
from tests.chaos.lag import LagWatch
from tests.support.cancels import SwallowsOneCancel


async def test_stop_ends_the_sampler_when_a_request_swallows_the_cancel(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = SwallowsOneCancel()
    monkeypatch.setattr(lag, "_queued", queued)
    monkeypatch.setattr(lag, "EVERY_S", 0.0)  # so the cancel lands inside a request
    watch = LagWatch(nats_url, rate=None)
    await watch.start()
    for _ in range(100):  # bounded: until it has sampled
        if watch.samples:
            break
        await asyncio.sleep(0.01)
    stopper = asyncio.create_task(watch.stop())
    await asyncio.wait({stopper}, timeout=5.0)
    assert queued.swallowed == 1
    assert stopper.done(), "the sampler went on after stop(): its cancel was swallowed"
