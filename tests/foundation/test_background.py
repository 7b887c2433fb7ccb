"""The runtime's background loops: a failure is logged and the loop goes on; stop ends them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from carebus_shared.runtime.background import BackgroundLoops


async def test_a_failing_step_is_logged_and_run_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    done = asyncio.Event()

    async def step() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first poll fails")
        if calls == 3:
            done.set()
        return calls == 2  # more is due at once after the second call

    loops = BackgroundLoops()
    loops.every("poller", step, every_s=0.01)
    with caplog.at_level(logging.ERROR, "carebus.background"):
        await loops.start()
        await asyncio.wait_for(done.wait(), 5)
        await loops.stop()
    assert calls >= 3
    [failure] = caplog.records
    assert failure.getMessage() == "poller failed; it runs again"
    assert failure.exc_info is not None


async def test_a_forever_loop_is_restarted_after_a_failure_and_not_after_it_returns() -> None:
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("lost the connection")

    loops = BackgroundLoops(restart_after_s=0.01)
    loops.forever("watcher", loop)
    await loops.start()
    await asyncio.sleep(0.2)
    await loops.stop()
    assert runs == 2


async def test_stop_cancels_a_loop_that_is_waiting() -> None:
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.Event().wait()

    loops = BackgroundLoops()
    loops.forever("idle", loop)
    await loops.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(loops.stop(), 5)
