"""Fault injection for the exactly-once tests: die right after a commit, before the ack.

``CAREBUS_ERP_POSTER_FAULT_KILL_AFTER_COMMIT=N`` makes the process SIGKILL itself after its
Nth posting transaction has committed and before the inputs are acknowledged: the window in
which only the inbox stands between a redelivery and a second posting. Off (0) by default.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("carebus.erp_poster.faults")


class KillAfterCommit:
    def __init__(self, after: int) -> None:
        self.after = after
        self.commits = 0

    def __call__(self) -> None:
        if self.after <= 0:
            return
        self.commits += 1
        if self.commits >= self.after:
            log.warning("fault injection: SIGKILL after commit %d, before the ack", self.commits)
            os.kill(os.getpid(), signal.SIGKILL)
