"""Drive a stage from its provisioned durable pull consumer: fetch a batch, run it, repeat.

Why not FastStream's batch subscriber: its pull loop keeps fetching until the batch is full
or its timeout has passed, so below a few thousand messages/s every hop holds each batch for
the whole timeout before handling it (docs/decisions/004). Here a batch is whatever is
available now, handled at once:

- busy: a "no wait" pull returns the waiting messages straight away; only when none are
  waiting does a second pull linger, for ``top_up_s``;
- idle (the last pull came back empty): a pull of one parks on the server for
  ``idle_wait_s``, answered the moment a message arrives, and that message is handled at
  once (what arrives meanwhile makes the next, busy, batch).

Pulls go through ``pull.Puller`` rather than nats-py's ``fetch`` (a task per message).

One batch at a time per consumer: stages whose order matters rely on it (see topology). The
loop also skips FastStream's per-call middleware, argument resolution and logging context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.jetstream.pull import Puller
from carebus_shared.jetstream.topology import ConsumerSpec

log = logging.getLogger("carebus.consumer")

OnBatch = Callable[[Sequence[Msg]], Awaitable[object]]


@dataclass
class StageConsumer:
    spec: ConsumerSpec
    on_batch: OnBatch
    batch_size: int = 100
    top_up_s: float = 0.005
    idle_wait_s: float = 1.0
    retry_s: float = 1.0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self, js: Callable[[], JetStreamContext]) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(js), name=f"consume-{self.spec.durable}")

    async def stop(self, timeout_s: float) -> bool:
        """Finish the batch in hand (an idle fetch ends within ``idle_wait_s``), then stop.
        False when it had to be cancelled after ``timeout_s``."""
        self._stopping.set()
        if self._task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            return True
        except TimeoutError:
            log.warning("consumer did not stop in time", extra={"durable": self.spec.durable})
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            return False

    async def _run(self, js: Callable[[], JetStreamContext]) -> None:
        puller: Puller | None = None
        busy = True
        while not self._stopping.is_set():  # bounded by stop()
            try:
                if puller is None:
                    # nats-py keeps the connection on the context; the inbox rides on it.
                    puller = Puller(js()._nc, self.spec.stream, self.spec.durable)
                    await puller.start()
                msgs = await self._next_batch(puller, busy)
            except Exception:  # a reconnecting link or a consumer being re-provisioned
                log.warning("fetch failed", exc_info=True, extra={"durable": self.spec.durable})
                await _stop(puller)
                puller = None
                await asyncio.sleep(self.retry_s)
                continue
            busy = bool(msgs)
            if not msgs and puller.refusal:
                log.info("pull refused: %s", puller.refusal, extra={"durable": self.spec.durable})
                await asyncio.sleep(self.retry_s)  # e.g. another replica holds the batch
            if msgs:
                # The stage runner acks, terminates or naks each message itself; anything
                # escaping it leaves the batch unacked, to be redelivered after the deadline.
                try:
                    await self.on_batch(msgs)
                except Exception:
                    log.exception("batch failed", extra={"durable": self.spec.durable})
        await _stop(puller)

    async def _next_batch(self, puller: Puller, busy: bool) -> list[Msg]:
        if not busy:
            return await puller.pull(1, self.idle_wait_s)
        waiting = await puller.pull(self.batch_size, None)
        return waiting or await puller.pull(self.batch_size, self.top_up_s)


async def _stop(puller: Puller | None) -> None:
    if puller is not None:
        with contextlib.suppress(Exception):  # the link may be down; the server forgets it
            await puller.stop()
