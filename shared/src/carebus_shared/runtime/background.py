"""Long-running loops a service starts once it is up and cancels when it stops.

Each loop handles the failures it expects; an unexpected one is logged with its traceback
and the loop carries on after a pause, so no failure ends it silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from carebus_shared.tasks import cancel_and_wait

log = logging.getLogger("carebus.background")

# A step returns something true (True, a count of items done) when more may be due at once.
Step = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class _Loop:
    name: str
    step: Step
    every_s: float
    # Set for a loop that runs until it returns: it is not repeated after a clean return.
    once: bool


class BackgroundLoops:
    def __init__(self, restart_after_s: float = 2.0) -> None:
        self._loops: list[_Loop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._restart_after_s = restart_after_s

    def every(self, name: str, step: Step, every_s: float) -> None:
        """Run ``step`` every ``every_s`` seconds (at once again when it returns something true)."""
        self._loops.append(_Loop(name, step, every_s, once=False))

    def forever(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop``, which runs until cancelled; restart it if it fails."""
        self._loops.append(_Loop(name, loop, self._restart_after_s, once=True))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(loop), name=loop.name) for loop in self._loops]

    async def stop(self) -> None:
        await asyncio.gather(*(cancel_and_wait(task) for task in self._tasks))
        self._tasks = []

    async def _run(self, loop: _Loop) -> None:
        while True:
            more = False
            try:
                more = bool(await loop.step())
                if loop.once:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; it runs again", loop.name, extra={"task": loop.name})
            await asyncio.sleep(0 if more else loop.every_s)
