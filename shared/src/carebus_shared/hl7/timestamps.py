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
    r"^(\d{4})(?:(\d\d)(?:(\d\d)(?:(\d\d)(?:(\d\d)(?:(\d\d))?)?)?)?)?"  # YYYY[MM[DD[HH[MM[SS]]]]]
    r"(?:\.(?P<fraction>\d{1,4}))?(?P<offset>[+-]\d{4})?$"
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
        raise InvalidTimestamp("not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    year, month, day, hour, minute, second = match.groups()[:6]
    fraction = match["fraction"]
    if fraction is not None and second is None:
        raise InvalidTimestamp("fractional seconds without seconds")
    microsecond = int(fraction.ljust(6, "0")) if fraction else 0
    offset = match["offset"]
    tz = _offset(offset, value) if offset else resolve_zone(default_tz)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            microsecond,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise InvalidTimestamp("not a calendar date/time (a field out of range)") from exc


def _offset(text: str, value: str) -> timezone:
    zone = _fixed_zone(text)
    if zone is None:
        raise InvalidTimestamp("UTC offset out of range")
    return zone


@lru_cache(maxsize=128)
def _fixed_zone(text: str) -> timezone | None:
    """``+HHMM``/``-HHMM`` → its zone (None if out of range); a feed repeats a few offsets."""
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def format_dtm(moment: datetime) -> str:
    """``YYYYMMDDHHMMSS+ZZZZ`` for an aware datetime (used in ACK MSH-7)."""
    return moment.strftime("%Y%m%d%H%M%S%z")
