"""Showing a replay's progress on stderr: a bar with rate and time left on a terminal
(rich), plain lines at most every few seconds otherwise (a log, a CI job)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def update(self, done: int) -> None: ...
    def close(self) -> None: ...


def rate_and_eta(done: int, total: int, elapsed_s: float) -> tuple[float, float | None]:
    """Messages per second so far, and seconds left at that rate (None: not known yet)."""
    if elapsed_s <= 0 or done <= 0:
        return 0.0, None
    rate = done / elapsed_s
    return rate, max(0, total - done) / rate


def progress_line(label: str, done: int, total: int, elapsed_s: float) -> str:
    rate, eta = rate_and_eta(done, total, elapsed_s)
    share = f" ({100 * done // total} %)" if total else ""
    left = f", {eta:.0f} s left" if eta is not None and done < total else ""
    return f"{label}: {done:,}/{total:,}{share}, {rate:,.0f}/s{left}"


class Lines:
    """One line per ``every_s`` at most, and one at the end."""

    def __init__(
        self, out: TextIO, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out, self._every_s, self._clock = out, every_s, clock
        self._label, self._total, self._done = "", 0, 0
        self._started = self._last = 0.0

    def start(self, label: str, total: int) -> None:
        self._label, self._total = label, total
        self._started = self._last = self._clock()

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            self._print(now)

    def close(self) -> None:
        self._print(self._clock())

    def _print(self, now: float) -> None:
        line = progress_line(self._label, self._done, self._total, now - self._started)
        print(line, file=self._out, flush=True)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s", style="progress.data.speed")


class Bar:
    """rich's progress bar: done/total, rate, time left."""

    def __init__(self, out: TextIO) -> None:
        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
            console=Console(file=out),
        )
        self._task: TaskID | None = None

    def start(self, label: str, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def update(self, done: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done)

    def close(self) -> None:
        self._progress.stop()


def progress_on(out: TextIO | None = None) -> Progress:
    """A bar when ``out`` (stderr) is a terminal, plain lines otherwise."""
    out = out or sys.stderr
    return Bar(out) if out.isatty() else Lines(out)
