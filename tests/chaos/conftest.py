"""The fault suite's session: which faults run (``CAREBUS_CHAOS=full``: every fault, as
``make chaos`` runs them; otherwise the short version ``make test`` runs), and the table of
results printed at the end and kept in ``.data/chaos/``."""

from __future__ import annotations

import os
import time

import pytest

from tests.chaos import report
from tests.chaos.faults import FULL, SHORT

MODE = "full" if os.environ.get("CAREBUS_CHAOS") == "full" else "short"
FAULTS = FULL if MODE == "full" else SHORT
_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.RESULTS:
        return
    wall_s = time.monotonic() - _STARTED
    terminalreporter.section(f"fault suite ({MODE}): {len(report.RESULTS)} runs")
    for line in report.table(report.RESULTS):
        terminalreporter.write_line(line)
    path = report.write(report.RESULTS, MODE, wall_s)
    terminalreporter.write_line(f"wall time {wall_s:.0f} s; written to {path}")
