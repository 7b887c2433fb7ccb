"""One CSV row → canonical appointment event, or a :class:`RowProblem`.  Pure.

Event id ``csv:<source>:<appointment_id>:<version>``: the version is the row's
``updated_at`` when the export has one, else a hash of the row's values, so re-importing a
file (or an unchanged row in tomorrow's export) publishes nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final
from zoneinfo import ZoneInfo

from carebus_contracts import Event
from carebus_contracts import scheduling as s
from carebus_contracts.checks import ContractViolation
from carebus_scheduling_adapter.adapters.csv.layout import FIELDS, CsvLayout
from carebus_scheduling_adapter.domain.appointments import (
    EVENT_TYPES,
    STATUS_EVENTS,
    appointment_event,
)

STATUS_WORDS: Final[dict[str, str]] = {
    "booked": "booked", "scheduled": "booked", "confirmed": "booked", "pending": "booked",
    "cancelled": "cancelled", "canceled": "cancelled", "entered_in_error": "cancelled",
    "no_show": "no_show", "noshow": "no_show",
    "checked_in": "checked_in", "checkedin": "checked_in", "arrived": "checked_in",
    "completed": "completed", "complete": "completed", "fulfilled": "completed",
}  # fmt: skip


class RowProblem(ValueError):
    def __init__(self, field: str, reason: str, message: str, value: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.message = message
        self.value = value
        super().__init__(f"{field}: {message}")


def row_values(
    row: Sequence[str], positions: Mapping[str, int], layout: CsvLayout
) -> dict[str, str]:
    """canonical field → stripped value after the layout's value translation; blanks left out."""
    values: dict[str, str] = {}
    for name, index in positions.items():
        text = row[index].strip() if index < len(row) else ""
        if not text:
            continue
        table = layout.values.get(name)
        if table:
            text = table.get(text, text)
        values[name] = text
    return values


def row_to_event(
    values: Mapping[str, str],
    layout: CsvLayout,
    *,
    source_system: str,
    site: str | None,
    default_tz: str,
    recorded_at: datetime,
    fallback_version_ms: int,
) -> Event:
    appointment_id = _required(values, "appointment_id")
    patient_ref = _required(values, "patient_ref")
    status = _status(_required(values, "status"))
    kind = _kind(values.get("event"), status)
    zone = ZoneInfo(layout.timezone or default_tz)
    start = _datetime(values, "slot_start", layout, zone)
    assert start is not None  # required
    end = _datetime(values, "slot_end", layout, zone) or _end(start, _duration(values))
    if end < start:
        raise RowProblem(
            "slot_end", "slot_ends_before_start", "ends before it starts", values.get("slot_end")
        )
    updated = _datetime(values, "updated_at", layout, zone)
    version = updated.isoformat() if updated else _values_hash(values)
    appointment = s.Appointment(
        appointment_id=appointment_id,
        patient_ref=patient_ref,
        provider_code=values.get("provider_code"),
        location_code=values.get("location_code"),
        department_code=values.get("department_code"),
        service_code=values.get("service_code"),
        slot_start=start,
        slot_end=end,
        status=s.AppointmentStatus(status),
        reason=values.get("reason"),
    )
    try:
        return appointment_event(
            kind,
            appointment,
            event_id=f"csv:{source_system}:{appointment_id}:{version}",
            occurred_at=updated or recorded_at,
            recorded_at=recorded_at,
            source_system=source_system,
            site=values.get("site") or site,
            entity_version=int(updated.timestamp() * 1000) if updated else fallback_version_ms,
        )
    except ContractViolation as exc:
        raise RowProblem("appointment_id", "contract_violation", str(exc)) from exc


def _required(values: Mapping[str, str], name: str) -> str:
    value = values.get(name)
    if not value:
        raise RowProblem(name, "missing_value", "is required")
    return value


def _status(text: str) -> str:
    found = STATUS_WORDS.get("_".join(text.lower().replace("-", " ").split()))
    if found is None:
        raise RowProblem("status", "unknown_status", "is not a known status", text)
    return found


def _kind(event: str | None, status: str) -> str:
    if event is None:
        return status if status in STATUS_EVENTS else "booked"
    kind = event.strip().lower().replace("-", "_")
    if kind not in EVENT_TYPES:
        raise RowProblem("event", "unknown_event", "is not a known event", event)
    if (kind in STATUS_EVENTS or status in STATUS_EVENTS) and kind != status:
        if kind in STATUS_EVENTS or status == "booked":
            raise RowProblem(
                "event", "event_status_mismatch", f"event {kind} with status {status}", event
            )
        return status  # e.g. a 'modified' row whose status says checked in: a check-in
    return kind


def _datetime(
    values: Mapping[str, str], name: str, layout: CsvLayout, zone: ZoneInfo
) -> datetime | None:
    text = values.get(name)
    if text is None:
        if name == "slot_start":
            raise RowProblem(name, "missing_value", "is required")
        return None
    try:
        if layout.datetime_format:
            value = datetime.strptime(text, layout.datetime_format)
        else:
            value = datetime.fromisoformat(text)
    except ValueError as exc:
        expected = layout.datetime_format or "ISO 8601"
        raise RowProblem(name, "invalid_datetime", f"is not {expected}", text) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _duration(values: Mapping[str, str]) -> timedelta:
    text = values.get("duration_minutes")
    if text is None:
        raise RowProblem("slot_end", "missing_value", "neither slot_end nor duration_minutes")
    try:
        minutes = Decimal(text)
    except InvalidOperation as exc:
        raise RowProblem("duration_minutes", "invalid_number", "is not a number", text) from exc
    if not minutes.is_finite() or minutes <= 0:
        raise RowProblem("duration_minutes", "invalid_number", "must be positive", text)
    if minutes > _MAX_MINUTES:
        raise RowProblem("duration_minutes", "invalid_number", "is out of range", text)
    return timedelta(seconds=int(minutes * 60))


_MAX_MINUTES: Final = Decimal(int(timedelta.max.total_seconds()) // 60)


def _end(start: datetime, duration: timedelta) -> datetime:
    try:
        return start + duration
    except OverflowError:
        raise RowProblem("duration_minutes", "invalid_number", "ends after year 9999") from None


def _values_hash(values: Mapping[str, str]) -> str:
    joined = "\x1f".join(f"{name}={values.get(name, '')}" for name in FIELDS)
    return hashlib.blake2b(joined.encode(), digest_size=10).hexdigest()
