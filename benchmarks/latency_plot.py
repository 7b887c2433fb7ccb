"""The pipeline benchmark's chart of latency against offered load, as a PNG (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # draw to files only: no display, no GUI toolkit

from matplotlib.figure import Figure

DPI = 100
PERCENTILES = (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))


def line_chart(
    path: Path,
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    width: int = 900,
    height: int = 560,
) -> Path:
    """A width x height pixel PNG with one line (with markers) per named series of (x, y)
    points, axes from zero and a legend. Points whose y is not finite are left out."""
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for name, points in series:
        finite = sorted((x, y) for x, y in points if math.isfinite(y))
        axes.plot([x for x, _ in finite], [y for _, y in finite], marker="o", label=name)
    axes.set_title(title)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(visible=True, color="0.85")
    axes.legend(loc="upper left")
    figure.savefig(path, format="png", dpi=DPI)
    return path


def latency_vs_load(path: Path, runs: Sequence[Mapping[str, Any]]) -> Path:
    """p50/p95/p99 latency (accepted → ledger) of the runs at a fixed offered rate (the
    flat-out run, ``offered_per_s`` None, has no x)."""
    fixed = [r for r in runs if r["offered_per_s"] is not None]
    return line_chart(
        path,
        "Pipeline latency (accepted → ledger committed) vs offered load",
        "offered events/s",
        "latency (ms)",
        [
            (name, [(r["offered_per_s"], r["latency"][key]) for r in fixed])
            for name, key in PERCENTILES
        ],
    )
