"""Keeping a batch's ack deadline from passing while a stage waits on a receiver (the ERP's
rate limit or open circuit, an outbound feed's slow receiver): no delivery is burnt and
nothing is redelivered to another instance meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from nats.aio.msg import Msg

from carebus_shared.tasks import cancel_and_wait


@contextlib.asynccontextmanager
async def kept_in_progress(msgs: Sequence[Msg], every_s: float) -> AsyncIterator[None]:
    """Tell JetStream we are still working on ``msgs`` (a rate limit, an open circuit, a slow
    receiver), so their ack deadline does not pass and they are not redelivered meanwhile —
    no delivery burnt."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            for msg in msgs:
                with contextlib.suppress(Exception):  # a reconnecting link: next beat retries
                    await msg.in_progress()

    task = asyncio.create_task(beat(), name="kept-in-progress")
    try:
        yield
    finally:
        await cancel_and_wait(task)
