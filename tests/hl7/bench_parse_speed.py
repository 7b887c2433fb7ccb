"""Parse-speed comparison of HL7 v2 parser candidates on the SIU/DFT samples.

Not a test (pytest does not collect it).  Run from the repo root::

    PYTHONPATH=shared/src .venv/bin/python tests/hl7/bench_parse_speed.py

Each candidate gets the same input per message (BOM stripped, segments joined by CR,
since python-hl7 and hl7apy only split on CR) and must also read MSH-10 and PID-3.1,
so lazy parsers are not flattered.  Failures are counted instead of timed.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import hl7  # python-hl7
from hl7apy import parser as hl7apy_parser

from carebus_shared.hl7 import parse_message

SAMPLES = Path(
    os.environ.get("CAREBUS_SAMPLES")
    or Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
)


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


def measure(name: str, fn: Callable[[str], object], texts: list[str], rounds: int = 20) -> None:
    ok = [t for t in texts if _works(fn, t)]
    per_message: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in ok:
            fn(text)
        per_message.append((time.perf_counter() - start) / max(len(ok), 1))
    median_us = statistics.median(per_message) * 1e6
    print(f"{name:18} {len(ok):3}/{len(texts)} parsed   median {median_us:8.1f} µs/message")


def _works(fn: Callable[[str], object], text: str) -> bool:
    try:
        fn(text)
    except Exception:
        return False
    return True


def main() -> None:
    texts = load_messages()
    for name, fn in (
        ("carebus (own)", carebus),
        ("python-hl7 0.4.5", python_hl7),
        ("hl7apy flat", hl7apy_lenient),
        ("hl7apy groups", hl7apy_grouped),
    ):
        measure(name, fn, texts, rounds=3 if name.startswith("hl7apy") else 20)


if __name__ == "__main__":
    main()
