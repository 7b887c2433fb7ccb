"""The fault suite's table: printed at the end of the session and kept as JSON
(``.data/chaos/latest.json`` for ``make chaos``, ``latest-short.json`` for the short version
in ``make test``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

from tests.chaos.runner import REPO, FaultResult

RESULTS: list[FaultResult] = []
HEADER = (
    f"{'fault':<72} {'events':>6} {'ok':>5} {'lost':>4} {'dup':>4} {'unexp':>5} {'dead':>4} "
    f"{'outage s':>8} {'catch-up s':>10} {'sender s':>8}  verdict"
)


def row(result: FaultResult) -> str:
    catch_up = "-" if result.catch_up_s is None else f"{result.catch_up_s:.1f}"
    sender = "-" if result.sender_catch_up_s is None else f"{result.sender_catch_up_s:.1f}"
    failures = result.failures()
    if result.unsafe:
        verdict = "caught" if not failures else "NOT CAUGHT"
    else:
        verdict = "pass" if not failures else "FAIL"
    return (
        f"{result.fault[:72]:<72} {result.events:>6} {result.ok:>5} {result.lost:>4} "
        f"{result.duplicated:>4} {result.unexpected:>5} {result.dead_lettered:>4} "
        f"{result.outage_s:>8.1f} {catch_up:>10} {sender:>8}  {verdict}"
    )


def table(results: list[FaultResult]) -> list[str]:
    lines = [HEADER, "-" * len(HEADER)]
    lines += [row(r) for r in results]
    for result in results:
        for failure in result.failures():
            lines.append(f"  {result.fault}: {failure}")
    return lines


def write(results: list[FaultResult], mode: str, wall_s: float) -> Path:
    name = "latest.json" if mode == "full" else f"latest-{mode}.json"
    path = REPO / ".data" / "chaos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "mode": mode,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1),
        "cpus": os.cpu_count(),
        "runs": [
            {**dataclasses.asdict(r), "failures": r.failures(), "passed": not r.failures()}
            for r in results
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
