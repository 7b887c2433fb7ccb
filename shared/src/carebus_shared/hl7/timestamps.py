"""HL7 DTM/TS values → timezone-aware ``datetime``.

Format: ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``.  Missing parts take their
lowest value (``2024`` → 1 January 00:00).  Without an offset the caller's configured
zone applies: HL7 says "local time of the sender", and only the deployment knows it.
Ambiguous wall times (DST fall-back) resolve to the first occurrence (``fold=0``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

_DTM_RE: Final = re.compile(
    r"^(?P<digits>\d{4}(?:\d{2}){0,5})(?:\.(?P<fraction>\d{1,4}))?"
    r"(?P<offset>[+-]\d{4})?$"
)


class InvalidTimestamp(ValueError):
    """The text is not an HL7 DTM value."""


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def resolve_zone(default_tz: tzinfo | str) -> tzinfo:
    """Accept a zoneinfo name or a tzinfo; fail early on typos in configuration."""
    return _zone(default_tz) if isinstance(default_tz, str) else default_tz


def parse_dtm(value: str, default_tz: tzinfo | str) -> datetime:
    """Parse one DTM (the first component of a TS); raises :class:`InvalidTimestamp`."""
    match = _DTM_RE.match(value.strip())
    if match is None:
        raise InvalidTimestamp(f"not an HL7 timestamp: {value!r}")
    digits = match["digits"]
    fraction = match["fraction"]
    if fraction is not None and len(digits) != 14:
        raise InvalidTimestamp(f"fractional seconds without seconds: {value!r}")
    parts = [int(digits[0:4])] + [int(digits[i : i + 2]) for i in range(4, len(digits), 2)]
    year, month, day, hour, minute, second = parts + [1, 1, 0, 0, 0][len(parts) - 1 :]
    microsecond = int((fraction or "0").ljust(6, "0"))
    tz = _offset(match["offset"], value) if match["offset"] else resolve_zone(default_tz)
    try:
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)
    except ValueError as exc:
        raise InvalidTimestamp(f"impossible date/time {value!r}: {exc}") from exc


def _offset(text: str, value: str) -> timezone:
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59:
        raise InvalidTimestamp(f"offset out of range: {value!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def format_dtm(moment: datetime) -> str:
    """``YYYYMMDDHHMMSS+ZZZZ`` for an aware datetime (used in ACK MSH-7)."""
    return moment.strftime("%Y%m%d%H%M%S%z")
