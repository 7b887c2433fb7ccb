"""The CSV column layout carebus reads, and mapping files that describe other layouts.

The documented layout (services/scheduling_adapter/README.md) names columns after the
canonical fields.  A mapping file (TOML) maps canonical fields to a file's own columns,
translates values (``[values.status]``) and says how to read the file (``[format]``)::

    [columns]
    appointment_id = "ApptNo"
    slot_start = "Start"

    [values.status]
    "Scheduled" = "booked"

    [format]
    delimiter = ";"
    timezone = "America/Chicago"
    datetime_format = "%m/%d/%Y %H:%M"
    source_system = "clinic-export"
    site = "SITE01"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIELDS: Final = (
    "appointment_id",
    "event",
    "status",
    "slot_start",
    "slot_end",
    "duration_minutes",
    "patient_ref",
    "provider_code",
    "location_code",
    "department_code",
    "service_code",
    "reason",
    "site",
    "updated_at",
)
REQUIRED_FIELDS: Final = ("appointment_id", "status", "slot_start", "patient_ref")
_FORMAT_KEYS: Final = (
    "delimiter",
    "encoding",
    "timezone",
    "datetime_format",
    "source_system",
    "site",
)


class MappingError(ValueError):
    """A mapping file, or a file header, that cannot be used."""


@dataclass(frozen=True)
class CsvLayout:
    columns: Mapping[str, str] = field(default_factory=lambda: {f: f for f in FIELDS})
    """canonical field → column name in the file (matched case-insensitively)"""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    timezone: str | None = None
    datetime_format: str | None = None
    source_system: str | None = None
    site: str | None = None
    text: str = ""
    """The mapping file as given (kept with rejected rows so a re-drive reads them alike)."""

    @classmethod
    def from_toml(cls, text: str) -> CsvLayout:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise MappingError(f"mapping file is not valid TOML: {exc}") from exc
        unknown = set(doc) - {"columns", "values", "format"}
        if unknown:
            raise MappingError(f"unknown mapping sections: {', '.join(sorted(unknown))}")
        columns = {f: f for f in FIELDS}
        columns.update(_strings(doc.get("columns", {}), "columns", FIELDS))
        values = {
            name: _strings(table, f"values.{name}", None)
            for name, table in _table(doc.get("values", {}), "values", FIELDS).items()
        }
        fmt = _strings(doc.get("format", {}), "format", _FORMAT_KEYS)
        if len(fmt.get("delimiter", ",")) != 1:
            raise MappingError("format.delimiter must be one character")
        if "timezone" in fmt:
            try:
                ZoneInfo(fmt["timezone"])
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise MappingError(f"format.timezone {fmt['timezone']!r} is unknown") from exc
        return cls(
            columns=columns,
            values=values,
            delimiter=fmt.get("delimiter", ","),
            encoding=fmt.get("encoding", "utf-8-sig"),
            timezone=fmt.get("timezone"),
            datetime_format=fmt.get("datetime_format"),
            source_system=fmt.get("source_system"),
            site=fmt.get("site"),
            text=text,
        )

    def positions(self, header: Sequence[str]) -> dict[str, int]:
        """canonical field → column index; raises MappingError for missing required ones."""
        index = {name.strip().lower(): i for i, name in enumerate(header)}
        found = {
            f: index[col.strip().lower()]
            for f, col in self.columns.items()
            if col.strip().lower() in index
        }
        missing = [self.columns[f] for f in REQUIRED_FIELDS if f not in found]
        if "slot_end" not in found and "duration_minutes" not in found:
            missing.append(f"{self.columns['slot_end']} or {self.columns['duration_minutes']}")
        if missing:
            raise MappingError(f"the header lacks required columns: {', '.join(missing)}")
        return found


def _table(value: Any, where: str, allowed: Sequence[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(f"[{where}] must be a table")
    if allowed is not None:
        unknown = set(value) - set(allowed)
        if unknown:
            raise MappingError(f"[{where}] has unknown keys: {', '.join(sorted(unknown))}")
    return value


def _strings(value: Any, where: str, allowed: Sequence[str] | None) -> dict[str, str]:
    table = _table(value, where, allowed)
    bad = [k for k, v in table.items() if not isinstance(v, str)]
    if bad:
        raise MappingError(f"[{where}] values must be strings: {', '.join(sorted(bad))}")
    return dict(table)
