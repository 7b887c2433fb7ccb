"""How far behind a run is: the sender's lag (events due by the play's schedule and not yet
answered) and the pipeline's backlog (pending plus unacknowledged at every pipeline
consumer), sampled every ``EVERY_S`` through the run.

The catch-up after a fault is the time from its end until the pipeline's backlog is back to
what it was just before it (the median of the samples in the last ``BEFORE_S``), within a
little slack, so that what the day would have queued anyway does not count. The sender's
catch-up is read the same way from its lag: it also depends on the sender's own retry
policy (the player waits 30 s for an MLLP ACK that never came, as interface engines do).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client

from carebus_scenario.observe import PIPELINE_CONSUMERS
from carebus_scenario.player import Progress

EVERY_S = 0.2
BEFORE_S = 3.0
QUEUED_SLACK = 2  # messages


@dataclass(frozen=True)
class Sample:
    at: float
    queued: int | None  # None: JetStream did not answer (NATS is away)
    behind: float


@dataclass
class LagWatch:
    nats_url: str
    rate: float | None
    samples: list[Sample] = field(default_factory=list)
    _behind: float = 0.0
    _task: asyncio.Task[None] | None = None
    # Set by stop(), looked at by the loop: a cancel that lands inside a NATS request can be
    # swallowed by nats-py (its flush catches CancelledError), and the loop went on sampling
    # while stop() waited for it: a fault run then hung in its teardown.
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def progress(self, progress: Progress) -> None:
        """The player's progress callback."""
        due = progress.events_total
        if self.rate:
            due = min(due, int(self.rate * progress.elapsed_s))
        self._behind = max(0.0, float(due - progress.events_done))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sample(), name="chaos-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sample(self) -> None:
        nc = await nats.connect(
            self.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=1,
            error_cb=_quiet, disconnected_cb=_quiet_event,
        )  # fmt: skip
        try:
            while not self._stopping.is_set():  # until stop()
                self.samples.append(Sample(time.monotonic(), await _queued(nc), self._behind))
                await asyncio.sleep(EVERY_S)
        finally:
            await nc.close()

    def caught_up(self, start: float | None, end: float, *, sender: bool = False) -> float | None:
        """When, after ``end``, the pipeline's backlog was back to what it was before
        ``start`` (no ``start``: back to nothing queued); with ``sender``, the sender's lag
        instead. None if no sample says so."""
        before = [
            s for s in self.samples
            if start is not None and start - BEFORE_S <= s.at < start and s.queued is not None
        ]  # fmt: skip
        queued = statistics.median(s.queued or 0 for s in before) if before else 0
        behind = statistics.median(s.behind for s in before) if before else 0.0
        slack = max(5.0, 0.5 * (self.rate or 0.0))  # half a second of the day's events
        for s in self.samples:
            if s.at < end or s.queued is None:
                continue
            if (s.behind <= behind + slack) if sender else (s.queued <= queued + QUEUED_SLACK):
                return s.at
        return None


async def _quiet(_: Exception) -> None:
    """NATS going away is the fault under test, not news."""


async def _quiet_event() -> None:
    return None


async def _queued(nc: Client) -> int | None:
    try:
        js = nc.jetstream(timeout=1.0)
        infos = [
            await js.consumer_info(stream, durable) for stream, durable, _ in PIPELINE_CONSUMERS
        ]
    except Exception:  # NATS away, or a consumer not there yet
        return None
    return sum(int(i.num_pending or 0) + int(i.num_ack_pending or 0) for i in infos)
