"""Each pipeline durable's throughput: how fast its ack floor moves (messages/s), from
samples of JetStream's consumer info taken in the background."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_shared.jetstream.topology import Topology

# The rate is measured over the samples of about this long.
WINDOW_S: Final = 60.0
_MAX_SAMPLES: Final = 240


class ConsumerRates:
    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        topology: Topology,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._js = js
        self._topology = topology
        self._clock = clock
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    async def sample(self) -> None:
        """Note every pipeline stage's ack floor (a background step); a partitioned stage's
        is the sum of its partitions' (docs/decisions/030)."""
        now = self._clock()
        floors: dict[str, int] = {}
        for spec in self._topology.consumers:
            if not spec.pipeline:
                continue
            try:
                info = await self._js().consumer_info(spec.stream, spec.durable)
            except NotFoundError:
                continue
            floor = int(info.ack_floor.consumer_seq or 0) if info.ack_floor else 0
            floors[spec.stage] = floors.get(spec.stage, 0) + floor
        for stage, floor in floors.items():
            kept = self._samples.setdefault(stage, deque(maxlen=_MAX_SAMPLES))
            kept.append((now, floor))
            while len(kept) > 2 and now - kept[1][0] >= WINDOW_S:
                kept.popleft()

    def per_second(self, durable: str) -> float | None:
        """Messages acknowledged per second over the window; None before two samples."""
        kept = self._samples.get(durable)
        if not kept or len(kept) < 2:
            return None
        (t0, f0), (t1, f1) = kept[0], kept[-1]
        if t1 <= t0:
            return None
        return max(0, f1 - f0) / (t1 - t0)
