"""`make bench`: parse speed of the HL7 v2 parser candidates on the SIU/DFT samples.

Alone: ``.venv/bin/pytest benchmarks/bench_parse_speed.py -s -o python_files='bench_*.py'``
(figures in .data/bench/hl7_parse.json), or ``.venv/bin/python -m benchmarks.bench_parse_speed``
from the repository root.

Each candidate gets the same input per message (BOM stripped, segments joined by CR,
since python-hl7 and hl7apy only split on CR) and must also read MSH-10 and PID-3.1,
so lazy parsers are not flattered.  Failures are counted instead of timed.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

import hl7  # python-hl7
from hl7apy import parser as hl7apy_parser

from benchmarks.bench_report import report
from carebus_shared.hl7 import parse_message
from tests.support.samples import SAMPLES


def load_messages() -> list[str]:
    texts = []
    for path in sorted((SAMPLES / "hl7v2").rglob("*.hl7")):
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        header = text[:200]
        if "|SIU^" in header or "|DFT^" in header or "\nSCH|" in text or "\rSCH|" in text:
            texts.append("\r".join(s for s in re.split(r"\r\n|\r|\n", text) if s))
    return texts


def carebus(text: str) -> tuple[str | None, str | None]:
    msg = parse_message(text)
    pid = msg.segment("PID")
    return msg.control_id, pid.value(3) if pid else None


def python_hl7(text: str) -> tuple[str | None, str | None]:
    msg = hl7.parse(text)
    return str(msg.segment("MSH")[10]), str(msg.segment("PID")[3][0][0])


def hl7apy_lenient(text: str) -> tuple[str | None, str | None]:
    msg = hl7apy_parser.parse_message(text, find_groups=False, validation_level=2)
    return msg.msh.msh_10.value, msg.pid.pid_3.cx_1.value


def hl7apy_grouped(text: str) -> tuple[str | None, str | None]:
    msg = hl7apy_parser.parse_message(text, find_groups=True, validation_level=2)
    return msg.msh.msh_10.value, None


def measure(
    name: str, fn: Callable[[str], object], texts: list[str], rounds: int = 20
) -> tuple[int, float]:
    """(messages parsed, median µs per parsed message); failures are counted, not timed."""
    ok = [t for t in texts if _works(fn, t)]
    per_message: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in ok:
            fn(text)
        per_message.append((time.perf_counter() - start) / max(len(ok), 1))
    median_us = statistics.median(per_message) * 1e6
    print(f"{name:18} {len(ok):3}/{len(texts)} parsed   median {median_us:8.1f} µs/message")
    return len(ok), median_us


def _works(fn: Callable[[str], object], text: str) -> bool:
    try:
        fn(text)
    except Exception:
        return False
    return True


CANDIDATES: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("carebus", "carebus (own)", carebus),
    ("python_hl7", "python-hl7 0.4.5", python_hl7),
    ("hl7apy_flat", "hl7apy flat", hl7apy_lenient),
    ("hl7apy_groups", "hl7apy groups", hl7apy_grouped),
)


def main() -> dict[str, float | int]:
    texts = load_messages()
    figures: dict[str, float | int] = {"messages": len(texts)}
    for key, name, fn in CANDIDATES:
        parsed, median_us = measure(name, fn, texts, rounds=3 if key.startswith("hl7apy") else 20)
        figures[f"{key}_parsed"] = parsed
        figures[f"{key}_median_us_per_message"] = median_us
    return figures


def test_hl7_parse_speed_of_the_candidates() -> None:
    figures = main()
    report("hl7_parse", figures)
    assert figures["messages"] > 0
    assert figures["carebus_parsed"] == figures["messages"]


if __name__ == "__main__":
    report("hl7_parse", main())
