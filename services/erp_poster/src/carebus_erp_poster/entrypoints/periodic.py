"""A background loop for the confirmation tracker, started and stopped with the service.

The step returns True when it had a full batch (more work is due): it runs again at once,
so a backlog of confirmations after an outage drains at the ERP's pace, not the poll's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("carebus.erp_poster")


class Periodic:
    def __init__(self, name: str, step: Callable[[], Awaitable[bool]], every_s: float) -> None:
        self.name, self._step, self._every_s = name, step, every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            more = False
            try:
                more = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again", self.name)
            await asyncio.sleep(0 if more else self._every_s)
