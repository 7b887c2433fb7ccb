"""Drive a stage from its provisioned durable pull consumer: fetch a batch, run it, repeat.

Why not FastStream's batch subscriber: its pull loop keeps fetching until the batch is full
or its timeout has passed, so below a few thousand messages/s every hop holds each batch for
the whole timeout before handling it (20 ms per hop, measured: 146 ms p50 across the
pipeline at 500 events/s). Here a batch is whatever is available now, handled at once:

- busy: ``fetch(batch_size, top_up_s)`` returns the waiting messages straight away (its
  first request is "no wait"); only when none are waiting does it linger, for ``top_up_s``;
- idle (the last fetch came back empty): ``fetch(1, idle_wait_s)`` parks one request on the
  server, answered the moment a message arrives, and that message is handled at once (what
  arrives meanwhile makes the next, busy, batch).

One batch at a time per consumer: stages whose order matters rely on it (see topology). The
loop also skips FastStream's per-call middleware, argument resolution and logging context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.jetstream.topology import ConsumerSpec

log = logging.getLogger("carebus.consumer")

OnBatch = Callable[[Sequence[Msg]], Awaitable[object]]
_NO_MESSAGES = (nats.errors.TimeoutError, TimeoutError)


@dataclass
class StageConsumer:
    spec: ConsumerSpec
    on_batch: OnBatch
    batch_size: int = 200
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
        sub: JetStreamContext.PullSubscription | None = None
        busy = True
        while not self._stopping.is_set():  # bounded by stop()
            try:
                if sub is None:
                    sub = await js().pull_subscribe_bind(self.spec.durable, self.spec.stream)
                msgs = await self._next_batch(sub, busy)
            except Exception:  # a reconnecting link or a consumer being re-provisioned
                log.warning("fetch failed", exc_info=True, extra={"durable": self.spec.durable})
                await _unbind(sub)  # bind afresh: the consumer may have been re-created
                sub = None
                await asyncio.sleep(self.retry_s)
                continue
            busy = bool(msgs)
            if msgs:
                # The stage runner acks, terminates or naks each message itself; anything
                # escaping it leaves the batch unacked, to be redelivered after the deadline.
                try:
                    await self.on_batch(msgs)
                except Exception:
                    log.exception("batch failed", extra={"durable": self.spec.durable})
        await _unbind(sub)

    async def _next_batch(self, sub: JetStreamContext.PullSubscription, busy: bool) -> list[Msg]:
        if busy:
            return await _fetch(sub, self.batch_size, self.top_up_s)
        return await _fetch(sub, 1, self.idle_wait_s)


async def _unbind(sub: JetStreamContext.PullSubscription | None) -> None:
    if sub is not None:
        with contextlib.suppress(Exception):  # the link may be down; the server forgets it
            await sub.unsubscribe()


async def _fetch(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """Up to ``batch`` messages; none when nothing came within ``timeout``. nats-py raises
    either its own or asyncio's timeout error for "no messages" (see fetch_guard)."""
    try:
        return await sub.fetch(batch, timeout=timeout)
    except _NO_MESSAGES:
        return []
