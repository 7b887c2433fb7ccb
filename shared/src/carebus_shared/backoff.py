"""Exponential backoff with full jitter (AWS architecture blog): spreads retries of many
clients so a recovering receiver (the ERP, a billing system) is not hit by a synchronised wave."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry): U(0, min(max, base·2^(n-1)))."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return float(ceiling * rand())
