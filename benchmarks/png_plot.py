"""A line chart as a PNG, in pure Python (zlib + struct): no plotting library needed.

Enough for the benchmark's latency-against-load chart: axes with ticks, labelled with a 5x7
bitmap font (upper case, digits, a few signs), one polyline with markers per series, a legend.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (215, 215, 215)
PALETTE: tuple[Color, ...] = ((31, 119, 180), (255, 127, 14), (214, 39, 40), (44, 160, 44))

# 5x7 glyphs, one string of 7 rows of 5 bits per character.
_FONT: dict[str, tuple[int, ...]] = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "K": (17, 18, 20, 24, 20, 18, 17),
    "L": (16, 16, 16, 16, 16, 16, 31), "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8), "/": (1, 1, 2, 4, 8, 16, 16),
    ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8), "-": (0, 0, 0, 31, 0, 0, 0),
    ":": (0, 12, 12, 0, 12, 12, 0), " ": (0, 0, 0, 0, 0, 0, 0),
}  # fmt: skip


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(WHITE * (width * height))

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for n in range(steps + 1):
            x = round(x0 + (x1 - x0) * n / steps)
            y = round(y0 + (y1 - y0) * n / steps)
            for dx in range(-(width // 2), width - width // 2):
                for dy in range(-(width // 2), width - width // 2):
                    self.dot(x + dx, y + dy, color)

    def box(self, x: int, y: int, size: int, color: Color) -> None:
        for dx in range(-size, size + 1):
            for dy in range(-size, size + 1):
                self.dot(x + dx, y + dy, color)

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> None:
        for char in text.upper():
            rows = _FONT.get(char, _FONT[" "])
            for row, bits in enumerate(rows):
                for col in range(5):
                    if bits & (16 >> col):
                        for sx in range(scale):
                            for sy in range(scale):
                                self.dot(x + col * scale + sx, y + row * scale + sy, color)
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _ticks(high: float, count: int = 5) -> list[float]:
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(int(high / step) + 2)]


def line_chart(
    path: Path,
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    width: int = 900,
    height: int = 560,
) -> Path:
    canvas = Canvas(width, height)
    left, right, top, bottom = 110, width - 30, 60, height - 80
    points = [p for _, pts in series for p in pts if math.isfinite(p[1])]
    series = [(name, [p for p in pts if math.isfinite(p[1])]) for name, pts in series]
    x_ticks = _ticks(max((x for x, _ in points), default=1.0))
    y_ticks = _ticks(max((y for _, y in points), default=1.0))
    x_max, y_max = x_ticks[-1], y_ticks[-1]

    def at(x: float, y: float) -> tuple[int, int]:
        return (
            round(left + (right - left) * x / x_max),
            round(bottom - (bottom - top) * y / y_max),
        )

    for tick in y_ticks:
        _, y = at(0, tick)
        canvas.line(left, y, right, y, GREY)
        label = f"{tick:g}"
        canvas.text(left - 10 - 12 * len(label), y - 7, label)
    for tick in x_ticks:
        x, _ = at(tick, 0)
        canvas.line(x, bottom, x, bottom + 6, BLACK)
        label = f"{tick:g}"
        canvas.text(x - 6 * len(label), bottom + 14, label)
    canvas.line(left, top, left, bottom, BLACK, 2)
    canvas.line(left, bottom, right, bottom, BLACK, 2)
    canvas.text(left, 18, title, scale=2)
    canvas.text((left + right) // 2 - 6 * len(x_label), height - 36, x_label)
    canvas.text(8, top - 30, y_label)
    for n, (name, pts) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        placed = [at(x, y) for x, y in sorted(pts)]
        for (x0, y0), (x1, y1) in itertools.pairwise(placed):
            canvas.line(x0, y0, x1, y1, color, 3)
        for x, y in placed:
            canvas.box(x, y, 4, color)
        legend_y = top + 10 + 26 * n
        canvas.line(right - 190, legend_y + 7, right - 150, legend_y + 7, color, 3)
        canvas.text(right - 140, legend_y, name, color)
    path.write_bytes(canvas.png())
    return path
