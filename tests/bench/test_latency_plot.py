"""The benchmark report's chart (benchmarks/latency_plot.py) on made-up figures: a real PNG
of the asked size with every series drawn. Not a benchmark: it measures nothing."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import colors
from matplotlib.image import imread

from benchmarks.latency_plot import latency_vs_load, line_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# matplotlib's default colour cycle: the first, second, ... series.
SERIES_COLOURS = [colors.to_rgb(f"C{n}") for n in range(4)]
# A series' legend entry alone takes about 100 pixels of its colour, its line several hundred.
LINE = 400


def _ihdr_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _drawn(pixels: np.ndarray[Any, Any], rgb: tuple[float, float, float]) -> int:
    """How many pixels have (about) this colour."""
    return int(np.all(np.abs(pixels[..., :3] - rgb) < 0.02, axis=-1).sum())


def _run(offered: float | None, p50: float, p95: float, p99: float) -> dict[str, Any]:
    latency = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99}
    return {"offered_per_s": offered, "latency": latency}


@pytest.mark.parametrize(("width", "height"), [(900, 560), (400, 300)])
def test_the_chart_is_a_png_of_the_asked_size(tmp_path: Path, width: int, height: int) -> None:
    path = line_chart(
        tmp_path / "chart.png",
        "title",
        "x",
        "y",
        [("a", [(1, 2), (2, 3)])],
        width=width,
        height=height,
    )
    png = path.read_bytes()
    assert _ihdr_size(png) == (width, height)
    assert imread(path).shape[:2] == (height, width)


def test_every_series_is_drawn_and_no_other(tmp_path: Path) -> None:
    path = line_chart(
        tmp_path / "chart.png",
        "latency",
        "offered events/s",
        "ms",
        [("p50", [(200, 5.0), (500, 8.0)]), ("p99", [(200, 40.0), (500, 90.0)])],
    )
    pixels = imread(path)
    first, second, third, _ = (_drawn(pixels, rgb) for rgb in SERIES_COLOURS)
    assert first > LINE
    assert second > LINE
    assert third == 0


def test_points_without_a_finite_latency_are_left_out(tmp_path: Path) -> None:
    path = line_chart(
        tmp_path / "chart.png",
        "t",
        "x",
        "y",
        [("p50", [(200, 5.0), (500, math.nan), (1000, math.inf), (2000, 9.0)])],
    )
    assert _drawn(imread(path), SERIES_COLOURS[0]) > LINE


def test_latency_vs_load_draws_p50_p95_p99_of_the_fixed_rate_runs(tmp_path: Path) -> None:
    runs = [
        _run(None, 900.0, 2000.0, 5000.0),  # flat out: no offered rate, not on the chart
        _run(200, 12.0, 20.0, 31.0),
        _run(500, 14.0, 25.0, 40.0),
        _run(1000, 30.0, 80.0, 150.0),
    ]
    path = latency_vs_load(tmp_path / "latency_vs_load.png", runs)
    assert path.stat().st_size > 10_000
    assert _ihdr_size(path.read_bytes()) == (900, 560)
    pixels = imread(path)
    assert all(_drawn(pixels, rgb) > LINE for rgb in SERIES_COLOURS[:3])
    assert _drawn(pixels, SERIES_COLOURS[3]) == 0
