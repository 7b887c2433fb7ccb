"""The sandbox's behaviour knobs and their pure logic: rate limit, outages, 429 storms,
random errors, latency, and the log of every API request (for measuring clients)."""

from __future__ import annotations

import random
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field

from carebus_erp_sandbox.config import Settings, parse_windows


class SlidingLog:
    """Admit at most ``limit`` requests in any ``window_s``: what a strict ERP enforces."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> tuple[bool, int, float]:
        """(admitted, remaining in the window, seconds until a slot frees)."""
        while self._admitted and self._admitted[0] <= now - self.window_s:
            self._admitted.popleft()
        if self.limit <= 0:
            return True, 0, 0.0
        if len(self._admitted) >= self.limit:
            return False, 0, self._admitted[0] + self.window_s - now
        self._admitted.append(now)
        reset = self._admitted[0] + self.window_s - now
        return True, self.limit - len(self._admitted), reset


@dataclass
class Knobs:
    rate_limit: int
    rate_window_s: float
    latency_ms: float
    latency_jitter_ms: float
    error_rate: float
    confirm_delay_s: float
    outage_mode: str
    hang_s: float
    closed_periods: list[str]
    outages: list[tuple[float, float]] = field(default_factory=list)  # monotonic, absolute
    storms: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, RA

    @classmethod
    def from_settings(cls, s: Settings, started: float) -> Knobs:
        return cls(
            rate_limit=s.rate_limit,
            rate_window_s=s.rate_window_s,
            latency_ms=s.latency_ms,
            latency_jitter_ms=s.latency_jitter_ms,
            error_rate=s.error_rate,
            confirm_delay_s=s.confirm_delay_s,
            outage_mode=s.outage_mode,
            hang_s=s.hang_s,
            closed_periods=[p.strip() for p in s.closed_periods.split(",") if p.strip()],
            outages=[(started + a, started + b) for a, b in parse_windows(s.outages)],
        )


@dataclass(frozen=True)
class Logged:
    at: float  # wall clock, seconds since the epoch
    path: str
    status: int
    reason: str  # accepted, replayed, invalid, throttled, storm, outage, error, conflict, status
    traceparent: str | None = None  # as the client sent it (W3C trace context)


# The traceparent of the API request in hand, logged with it (a client's trace, joined).
request_traceparent: ContextVar[str | None] = ContextVar("request_traceparent", default=None)


class Faults:
    """Decides, per API request, whether the ERP misbehaves; logs every request."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.limiter = SlidingLog(knobs.rate_limit, knobs.rate_window_s)
        self.log: deque[Logged] = deque(maxlen=500_000)
        self._rand = random.Random()

    def reconfigure_rate(self, limit: int, window_s: float) -> None:
        self.knobs.rate_limit, self.knobs.rate_window_s = limit, window_s
        self.limiter = SlidingLog(limit, window_s)

    def in_outage(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.knobs.outages)

    def storm_retry_after(self, now: float) -> float | None:
        for start, end, retry_after in self.knobs.storms:
            if start <= now < end:
                return retry_after
        return None

    def fails_randomly(self) -> bool:
        return self._rand.random() < self.knobs.error_rate

    def latency_s(self) -> float:
        k = self.knobs
        jitter = self._rand.uniform(-k.latency_jitter_ms, k.latency_jitter_ms)
        return max(0.0, k.latency_ms + jitter) / 1000.0

    def policy_header(self) -> str:
        return f"{self.knobs.rate_limit};w={self.knobs.rate_window_s:g}"

    def record(self, path: str, status: int, reason: str) -> None:
        self.log.append(Logged(time.time(), path, status, reason, request_traceparent.get()))
