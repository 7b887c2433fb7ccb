"""The real ERP poster, made to die between a posting's commit and its ack (tests only).

    CAREBUS_TEST_KILL_AFTER_COMMIT=N python -m tests.erp_poster.fault_injection serve

Run from the repository root (or with it on ``PYTHONPATH``): the process SIGKILLs itself right
after its Nth posting transaction has committed and before the inputs are acknowledged, the
window in which only the inbox stands between a redelivery and a second posting. Everything
else (settings, commands) is the poster's own script; unset or 0 never kills.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys

from carebus_erp_poster import app, config
from carebus_shared.runtime.cli import ServiceScript

MODULE = "tests.erp_poster.fault_injection"
KILL_AFTER_ENV = "CAREBUS_TEST_KILL_AFTER_COMMIT"

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


def main() -> int:
    kill = KillAfterCommit(int(os.environ.get(KILL_AFTER_ENV) or 0))
    build = functools.partial(app.build, after_commit=kill)
    return ServiceScript("erp-poster-fault-injection", __doc__, config, build).main()


if __name__ == "__main__":
    sys.exit(main())
