"""Stopping a task for good: nats-py swallows a cancel that lands in its flush (it catches
CancelledError and returns), so a loop around a NATS call can run on after one cancel."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

log = logging.getLogger("carebus.tasks")

# How often a task still running is cancelled again.
RECANCEL_EVERY_S = 0.1
# How long a loop of the service's own gets to end once cancelled.
STOP_WITHIN_S = 5.0
# How far past its shutdown grace a stopping service goes before it names its tasks.
OVERRUN_MARGIN_S = 5.0


async def cancel_and_wait(task: asyncio.Task[Any], timeout_s: float = STOP_WITHIN_S) -> bool:
    """Cancel ``task`` and wait for it to end, cancelling it again while it runs on, for up to
    ``timeout_s``. False when it outlived that: it is left running and its stack logged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():  # bounded by the deadline
        remaining = deadline - loop.time()
        if remaining <= 0:
            stack = io.StringIO()
            task.print_stack(file=stack)
            log.warning(
                "task %s did not stop within %.1f s; left running:\n%s",
                task.get_name(), timeout_s, stack.getvalue(),
            )  # fmt: skip
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_EVERY_S, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s failed as it stopped", task.get_name(), exc_info=task.exception())
    return True


async def report_overrun(after_s: float) -> None:
    """After ``after_s``, log where every other task of the loop waits (a stop that hangs)."""
    await asyncio.sleep(after_s)
    stacks = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(limit=8, file=stacks)
    log.warning("still stopping after %.0f s; every task:\n%s", after_s, stacks.getvalue())
