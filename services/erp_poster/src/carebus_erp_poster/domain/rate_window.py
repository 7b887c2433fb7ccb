"""Client-side rate limiting that never exceeds an advertised ``limit`` per ``window_s``.

A token bucket allows twice its rate within a sliding window (a full bucket, then the
refill); an ERP counting requests over a sliding window would answer 429. We keep the send
times of the last ``limit`` requests instead and admit a new one only when the oldest has
left the window, widened by 10 % because the ERP counts arrivals, which network and
scheduling jitter can bunch up. Pure: the caller sleeps.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping

_POLICY_RE = re.compile(r"^\s*(\d+)\s*(?:;.*?\bw\s*=\s*(\d+(?:\.\d+)?))?")


class SlidingWindow:
    def __init__(self, limit: int, window_s: float = 1.0, margin: float = 1.1) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self.margin = margin
        self._sent: deque[float] = deque()
        self.blocked_until = 0.0

    def reconfigure(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = max(1, limit), window_s

    def block_until(self, when: float) -> None:
        """The ERP said Retry-After: send nothing before ``when``."""
        self.blocked_until = max(self.blocked_until, when)

    def wait_s(self, now: float) -> float:
        """Seconds to wait before the next request may be sent (0: send now)."""
        span = self.window_s * self.margin
        while self._sent and self._sent[0] <= now - span:
            self._sent.popleft()
        wait = max(0.0, self.blocked_until - now)
        if len(self._sent) >= self.limit:
            wait = max(wait, self._sent[len(self._sent) - self.limit] + span - now)
        return wait

    def record(self, now: float) -> None:
        self._sent.append(now)


def advertised_policy(headers: Mapping[str, str]) -> tuple[int, float] | None:
    """(limit, window seconds) from ``RateLimit-Policy: 20;w=1`` or ``RateLimit-Limit: 20``."""
    policy = headers.get("ratelimit-policy")
    if policy:
        match = _POLICY_RE.match(policy)
        if match:
            return int(match.group(1)), float(match.group(2) or 1.0)
    limit = headers.get("ratelimit-limit") or headers.get("x-ratelimit-limit")
    if limit and limit.strip().isdigit():
        return int(limit), 1.0
    return None


def retry_after_s(value: str | None, now_epoch: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_epoch)
