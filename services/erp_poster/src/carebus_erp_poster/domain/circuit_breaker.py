"""A circuit breaker: after repeated failures stop calling the ERP, then probe before closing.

closed → (``failure_threshold`` consecutive failures) → open for ``open_s`` → half-open: one
probe request is admitted; its success closes the circuit, its failure opens it again.
Pure state with an injected clock; the caller decides how to wait.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.open_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def remaining_open_s(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.open_s - (self._clock() - self._opened_at))

    def try_admit(self) -> bool:
        """May a request go now? In half-open state only one probe is admitted at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        changed = self._opened_at is not None
        self._failures, self._opened_at, self._probe_in_flight = 0, None, False
        if changed:
            self._notify()

    def record_failure(self) -> None:
        self._failures += 1
        was_probe, self._probe_in_flight = self._probe_in_flight, False
        if was_probe or (self._opened_at is None and self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
            self.opened_count += 1
            self._notify()

    def release_probe(self) -> None:
        """The admitted request ended with neither verdict (e.g. throttled): free the slot."""
        self._probe_in_flight = False

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.state)
