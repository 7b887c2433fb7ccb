"""Long-running tasks a service starts once it is up, and cancels when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("carebus.masterdata")


class Background:
    def __init__(self, *loops: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loops = loops
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._guard(loop), name=loop.__qualname__) for loop in self._loops
        ]

    async def _guard(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Each loop handles its own expected failures; this keeps an unexpected one from
        # silently ending it.
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "background task failed; restarting it", extra={"task": loop.__qualname__}
                )
                await asyncio.sleep(2.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
