"""Stopping a service's own tasks ends them even when a NATS call swallows the cancel
(nats-py's flush catches CancelledError and returns, so the loop around it goes on): a CI
run's mapper sat out the 30 s a test gave it to stop after SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from carebus_shared.runtime.background import BackgroundLoops
from carebus_shared.tasks import cancel_and_wait, report_overrun
from tests.support.cancels import SwallowsOneCancel

# The old stops waited forever on such a loop; the tests' own bound makes that a failure.
BOUND_S = 5.0


async def test_a_task_that_swallowed_the_cancel_is_cancelled_again() -> None:
    call = SwallowsOneCancel()

    async def loop() -> None:
        while True:  # ended by the cancel
            await call()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    assert await cancel_and_wait(task, timeout_s=BOUND_S)
    assert call.swallowed == 1
    assert task.cancelled()


async def test_a_task_that_outlives_the_bound_is_left_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():  # bounded: released below
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, "carebus.tasks"):
        assert not await cancel_and_wait(task, timeout_s=0.3)
    [warning] = caplog.records
    assert "stubborn-loop" in warning.getMessage()
    assert "did not stop" in warning.getMessage()
    release.set()
    await asyncio.wait_for(task, BOUND_S)


async def test_a_finished_task_is_stopped_at_once() -> None:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    assert await cancel_and_wait(task, timeout_s=0.1)


async def test_background_loops_stop_when_a_step_swallows_the_cancel() -> None:
    step = SwallowsOneCancel(result=1)  # more due at once: the cancel lands in a call
    loops = BackgroundLoops()
    loops.every("renewer", step, every_s=0.0)
    await loops.start()
    for _ in range(100):  # bounded: until it has run a step
        if step.calls:
            break
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(loops.stop())
    done, _ = await asyncio.wait({stopping}, timeout=BOUND_S)
    for task in asyncio.all_tasks():  # a failed run leaves no loop behind in the session
        if task.get_name() == "renewer":
            task.cancel()
    assert stopping in done, "stop() still waiting on a loop that swallowed its cancel"
    assert step.swallowed == 1
    calls = step.calls
    await asyncio.sleep(0.1)
    assert step.calls == calls


async def test_an_overrunning_stop_names_where_every_task_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def waits_on_a_lease() -> None:
        await asyncio.Event().wait()

    stuck = asyncio.create_task(waits_on_a_lease(), name="stuck-heartbeat")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, "carebus.tasks"):
        await report_overrun(0.01)
    stuck.cancel()
    [warning] = caplog.records
    assert "still stopping after" in warning.getMessage()
    assert "stuck-heartbeat" in warning.getMessage()
    assert "waits_on_a_lease" in warning.getMessage()
