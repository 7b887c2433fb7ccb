"""The scheduling adapter's documented CSV layout: one row per appointment change."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

COLUMNS = (
    "appointment_id", "status", "event", "slot_start", "slot_end", "patient_ref",
    "provider_code", "location_code", "department_code", "service_code", "reason", "site",
    "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class CsvRow:
    appointment_id: str
    status: str
    event: str
    slot_start: dt.datetime
    slot_end: dt.datetime
    patient_ref: str
    provider_code: str
    location_code: str
    department_code: str
    service_code: str
    reason: str
    site: str
    updated_at: dt.datetime


def render_csv(rows: list[CsvRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.appointment_id, row.status, row.event, row.slot_start.isoformat(),
                row.slot_end.isoformat(), row.patient_ref, row.provider_code,
                row.location_code, row.department_code, row.service_code, row.reason,
                row.site, row.updated_at.isoformat(),
            ]
        )  # fmt: skip
    return out.getvalue().encode()
