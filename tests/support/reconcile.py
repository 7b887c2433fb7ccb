"""`carebus reconcile` as an operator runs it: a process of its own against a suite's NATS and
PostgreSQL, and its JSON report read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "carebus_shared.cli.main", "reconcile", *args]


def environment(nats_url: str, database_url: str) -> dict[str, str]:
    return {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url}


def reconcile(nats_url: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run it to the end (exit status, stdout: the report, stderr: the summary line)."""
    return subprocess.run(
        command(*args),
        env=environment(nats_url, database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def differences(report: str) -> list[dict[str, Any]]:
    """Every difference of a JSON report, with its site and day."""
    return [
        {**d, "site": s["site"], "day": s["day"]}
        for s in json.loads(report)["site_days"]
        for d in s["differences"]
    ]
