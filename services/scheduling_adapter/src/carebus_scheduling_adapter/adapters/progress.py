"""A one-line progress bar for terminals; silent when the output is not a terminal."""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 30


class Progress:
    def __init__(self, stream: TextIO, total_bytes: int, label: str, min_interval_s: float = 0.1):
        self._stream = stream
        self._total = max(total_bytes, 1)
        self._label = label
        self._interval = min_interval_s
        self._started = time.monotonic()
        self._last = 0.0
        self.enabled = stream.isatty()

    def update(self, bytes_read: int, rows: int, rejected: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        share = min(bytes_read / self._total, 1.0)
        filled = int(share * _WIDTH)
        rate = rows / max(now - self._started, 1e-6)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        self._stream.write(
            f"\r{self._label} [{bar}] {share:4.0%} {rows:,} rows "
            f"({rejected:,} rejected) {rate:,.0f} rows/s"
        )
        self._stream.flush()

    def done(self) -> None:
        if self.enabled:
            self._stream.write("\n")
            self._stream.flush()
