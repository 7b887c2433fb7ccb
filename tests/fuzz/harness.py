"""What every parser fuzz property shares: the profile, the "typed error or result, in time"
check, the samples and the mutations of them.

A property calls :func:`outcome` with the entry point, the input and the exception types the
entry point documents; anything else raised fails the property (with the input), and so
does a call that runs longer than :data:`HANG_SECONDS` (a SIGALRM interrupts it, so a hang
is a failure, not a stuck test run).  Hypothesis' ``deadline`` bounds the whole example.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

from hypothesis import settings
from hypothesis import strategies as st

from tests.support.samples import SAMPLES, hl7_sample_inputs

T = TypeVar("T")

PROFILE: Final = os.environ.get("CAREBUS_FUZZ_PROFILE", "ci")
FUZZ: Final = settings.get_profile(PROFILE)
"""Decorator applying the selected profile (registered in tests/fuzz/conftest.py)."""

HANG_SECONDS: Final = 10.0
"""No single call may take longer, whatever its input (a hang, not a slow parse)."""
MAX_MUTATED_BYTES: Final = 256 * 1024
"""Mutations that grow an input (repeats) stop here; the 1 MB cases are explicit tests."""


class Hang(AssertionError):
    """A call ran past its time bound."""


class Untyped(AssertionError):
    """A call raised something other than its documented errors."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`Hang` after ``seconds`` (main thread, POSIX)."""

    def alarm(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(
    call: Callable[[], T],
    allowed: tuple[type[BaseException], ...],
    *,
    seconds: float = HANG_SECONDS,
) -> T | BaseException:
    """The result of ``call()``, or the allowed exception it raised; anything else (another
    exception, or running longer than ``seconds``) is an :class:`AssertionError`."""
    started = time.perf_counter()
    try:
        with time_bound(seconds):
            return call()
    except Hang:
        raise
    except allowed as exc:
        return exc
    except Exception as exc:
        raise Untyped(f"{type(exc).__name__} is not one of the documented errors: {exc}") from exc
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < seconds, f"took {elapsed:.2f} s (bound {seconds} s)"


# -- samples ------------------------------------------------------------------------------


def hl7_samples(*message_types: str) -> list[bytes]:
    """The HL7 v2 samples whose MSH-9 starts with one of ``message_types`` (all if none)."""
    found = []
    for raw in hl7_sample_inputs().values():
        head = raw.lstrip(b"\xef\xbb\xbf\x0b\r\n ")[:300]
        if not message_types or any(b"|" + t.encode() + b"^" in head for t in message_types):
            found.append(raw)
    assert found, f"no HL7 samples of {message_types}"
    return found


def x12_835_samples() -> list[bytes]:
    found = [p.read_bytes() for p in sorted((SAMPLES / "x12").rglob("*.835"))]
    assert found
    return found


def fhir_samples(resource_type: str) -> list[bytes]:
    """Every JSON sample (official examples, converter Bundles) of ``resource_type``."""
    found = []
    for path in sorted((SAMPLES / "fhir-r4").rglob("*.json")):
        raw = path.read_bytes()
        try:
            kind = json.loads(raw).get("resourceType")
        except (ValueError, AttributeError):
            continue
        if kind == resource_type:
            found.append(raw)
    assert found, f"no {resource_type} samples"
    return found


def scheduling_bundles() -> list[bytes]:
    return [b for b in fhir_samples("Bundle") if b'"Appointment"' in b]


def billing_bundles() -> list[bytes]:
    return [b for b in fhir_samples("Bundle") if b'"ChargeItem"' in b or b'"Claim' in b]


def path_text(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


# -- nasty pieces -------------------------------------------------------------------------

LONE_SURROGATE_UTF8: Final = b"\xed\xa0\x80"  # U+D800 as (invalid) UTF-8
NASTY_BYTES: Final[tuple[bytes, ...]] = (
    b"\x00",
    b"\x00" * 64,
    LONE_SURROGATE_UTF8,
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x80\xa8",  # U+2028 line separator
    b"\x0b",
    b"\x1c",
    b"\x1c\r",
    b"\r\n",
    b"\n",
    b"\t",
    b"\\",
    b"\\X\\",
    b"\\X0\\",
    b"\\XFFFE\\",
    b"\\Xzz\\",
    b"\\.br\\",
    b"\\Z\\",
    b'""',
    b"^^^^^^^^",
    b"&&&&",
    b"~~~~",
    b"|||||",
    b"*****",
    b":::",
    b"9" * 5000,
    b"-" + b"9" * 400,
    b"1E999999999",
    b"-1E-999999999",
    b"1e308",
    b"NaN",
    b"sNaN",
    b"Infinity",
    b"-Infinity",
    b"-0",
    b".5",
    b"5.",
    b"0.001",
    b"99991231235959",
    b"99991231235959.9999-1400",
    b"00010101000000+1400",
    b"00000000",
    b"20250230",
    b"2025-13-01",
    b"9999-12-31T23:59:59-14:00",
    b"0001-01-01T00:00:00+14:00",
    "٢٠٢٤٠١٠١".encode(),  # Arabic-Indic digits: \d in Python regexes
    "１２３".encode(),  # fullwidth digits
    b"MSH|^~\\&|",
    b"ISA*",
    b"ST*835*0001~",
    b"SE*1*0001~",
)


@st.composite
def nasty_bytes(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(NASTY_BYTES) | st.binary(min_size=1, max_size=24))


# -- text mutations -----------------------------------------------------------------------


def _split_keep(data: bytes, sep: bytes) -> list[bytes]:
    return data.split(sep) if sep else [data]


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: Sequence[bytes],
    *,
    segment: bytes,
    field: bytes,
    separators: bytes,
) -> bytes:
    """A sample after 1-4 structure-aware mutations: bytes flipped, inserted or deleted;
    segments or fields duplicated, dropped or swapped; separators swapped; a part repeated
    up to :data:`MAX_MUTATED_BYTES`; a field replaced by a nasty value."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        where = draw(st.integers(0, max(size - 1, 0)))
        op = draw(
            st.sampled_from(
                (
                    "flip", "insert", "delete", "dup_segment", "drop_segment", "swap_segments",
                    "dup_field", "drop_field", "nasty_field", "swap_separators", "repeat",
                    "truncate",
                )
            )
        )  # fmt: skip
        if op == "flip" and size:
            data[where] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[where:where] = draw(nasty_bytes())
        elif op == "delete" and size:
            del data[where : where + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[where:]
        elif op in ("dup_segment", "drop_segment", "swap_segments"):
            parts = _split_keep(bytes(data), segment)
            i = draw(st.integers(0, len(parts) - 1))
            j = draw(st.integers(0, len(parts) - 1))
            if op == "dup_segment":
                parts.insert(j, parts[i])
            elif op == "drop_segment" and len(parts) > 1:
                del parts[i]
            else:
                parts[i], parts[j] = parts[j], parts[i]
            data = bytearray(segment.join(parts))
        elif op in ("dup_field", "drop_field", "nasty_field"):
            parts = _split_keep(bytes(data), segment)
            i = draw(st.integers(0, len(parts) - 1))
            fields = parts[i].split(field)
            k = draw(st.integers(0, len(fields) - 1))
            if op == "dup_field":
                fields.insert(k, fields[k])
            elif op == "drop_field" and len(fields) > 1:
                del fields[k]
            else:
                fields[k] = draw(nasty_bytes())
            parts[i] = field.join(fields)
            data = bytearray(segment.join(parts))
        elif op == "swap_separators":
            a = draw(st.sampled_from(separators))
            b = draw(st.sampled_from(separators + b"\x00 ,;#"))
            data = bytearray(bytes(data).replace(bytes([a]), bytes([b])))
        elif op == "repeat" and size:
            piece = bytes(data[where : where + draw(st.integers(1, 200))])
            times = min(draw(st.integers(2, 100_000)), MAX_MUTATED_BYTES // len(piece))
            data[where:where] = piece * max(times, 1)
    return bytes(data[: MAX_MUTATED_BYTES * 2])


def hl7_mutated(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    return mutated(seeds, segment=b"\r", field=b"|", separators=b"|^~\\&\r\n")


def x12_mutated(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    return mutated(seeds, segment=b"~", field=b"*", separators=b"*:~^\n\r")


def any_bytes(max_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, and arbitrary text (lone surrogates included) as UTF-8 with
    ``surrogatepass``."""
    text = st.text(max_size=max_size // 4).map(lambda t: t.encode("utf-8", "surrogatepass"))
    return st.binary(max_size=max_size) | text


def with_prefix(prefix: bytes, tail: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Arbitrary input that at least starts like the format, so it gets past the first check."""
    return tail.map(lambda t: prefix + t)


# -- JSON mutations -----------------------------------------------------------------------

_RAW: Final = "\x00carebus-raw\x00"
"""A string starting with this is written into the JSON text as its raw rest (see _dumps)."""
_RAW_IN_TEXT: Final = re.compile(r'"\\u0000carebus-raw\\u0000((?:[^"\\]|\\.)*)"')
HUGE_NUMBERS: Final = (
    "1E999999999", "-1E999999999", "1e-999999999", "9" * 5000, "-" + "9" * 5000,
    "1" + "0" * 400 + ".5", "0." + "0" * 400 + "1", "1e308", "1e309", "-0", "-0.0",
    "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809",
    "1.000000000000000000000000000001", "2.5e-3", "12.345",
)  # fmt: skip
NASTY_STRINGS: Final = (
    "", " ", "\x00", "\ud800", "\udfff", "\u2028", "\ufeff", "a" * 70_000, "NaN", "sNaN",
    "Infinity", "-Infinity", "1E999999999", "0001-01-01", "9999-12-31", "0000-00-00",
    "2025-02-30", "2025", "2025-13", "0000", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00", "2025-03-10T09:00:00", "2025-03-10T09:00:00Z",
    "2025-03-10T25:00:00+00:00", "2025-W01-1", "Patient/", "/", "//", "Patient/1/_history/2",
    "urn:uuid:", "Appointment/x?y", "booked", "cancelled", "proposed", "active",
    "entered-in-error", "payment", "CO", "PR", "submitted", "benefit", "USD", "usd", "JPY",
    "XXXX", "POST", "PUT", "DELETE", "transaction", "batch", "Bundle", "Appointment",
    "ChargeItem", "ClaimResponse", "PaymentReconciliation", "Patient", "Practitioner",
    "PractitionerRole", "Location",
)  # fmt: skip


def _deep(depth: int, kind: str) -> str:
    """Nesting ``depth`` deep, as raw JSON text (json.dumps itself would recurse too deep)."""
    if kind == "list":
        return _RAW + "[" * depth + "0" + "]" * depth
    return _RAW + '{"a":' * depth + "0" + "}" * depth


@st.composite
def nasty_json(draw: st.DrawFn) -> Any:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return _RAW + draw(st.sampled_from(HUGE_NUMBERS))
    if choice == 1:
        depth = draw(st.sampled_from((64, 500, 5000, 50_000)))
        return _deep(depth, draw(st.sampled_from(("list", "dict"))))
    if choice == 2:
        return draw(st.sampled_from(NASTY_STRINGS))
    if choice == 3:
        return draw(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False))
    if choice == 4:
        return draw(st.sampled_from(([], {}, [{}], [None], {"": None})))
    if choice == 5:
        return draw(st.text(max_size=40))
    if choice == 6:
        return [draw(st.sampled_from(NASTY_STRINGS))] * draw(st.integers(2, 2000))
    if choice == 7:
        currency = draw(st.sampled_from(("USD", "JPY", "KWD", "", "x")))
        return {"value": _RAW + draw(st.sampled_from(HUGE_NUMBERS)), "currency": currency}
    if choice == 8:
        return {"reference": draw(st.sampled_from(NASTY_STRINGS))}
    return draw(st.integers(min_value=-(2**70), max_value=2**70))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _dumps(doc: Any) -> bytes:
    """JSON text, with raw tokens written as they are (absurd number literals, deep nesting)
    and lone surrogates as ``\\ud800`` escapes."""
    text = json.dumps(doc, ensure_ascii=True)
    return _RAW_IN_TEXT.sub(lambda m: json.loads(f'"{m[1]}"'), text).encode()


@st.composite
def json_mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A JSON sample with 1-4 nodes replaced, deleted or duplicated (deep nesting, huge
    numbers, lone surrogates, wrong types), then sometimes byte-mutated as text too."""
    doc = json.loads(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(("replace", "replace", "delete", "duplicate")))
        if not path:
            if op == "replace" and draw(st.booleans()):
                doc = draw(nasty_json())
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(nasty_json())
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, parent[key])
        else:
            parent[key] = [parent[key], parent[key]]
    data = _dumps(doc)
    if draw(st.integers(0, 3)) == 0:
        data = draw(mutated([data], segment=b",", field=b":", separators=b',:{}[]"'))
    return data
