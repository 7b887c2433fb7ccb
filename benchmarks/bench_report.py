"""Printing benchmark figures and keeping them in .data/bench/<name>.json."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1] / ".data" / "bench"


def report(name: str, figures: dict[str, Any]) -> Path:
    """Print ``figures`` as a table and write them, with the machine, to a JSON file."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        **figures,
    }
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    width = max(len(k) for k in figures)
    print(f"\n== {name} ==")
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
    print(f"  (written to {path})")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
