"""CSV appointment exports with the default layout: the row reader (``CsvReader``), the
header check and each row's mapping, on arbitrary and on mutated files: events, or
``MappingError`` (the header), the reader's ``UnicodeDecodeError`` / ``csv.Error`` (the
import stops there, ``ImportStopped``) or a ``RowProblem`` (the row), nothing else, no hang."""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.csv.files import CsvReader
from carebus_scheduling_adapter.adapters.csv.layout import CsvLayout, MappingError
from carebus_scheduling_adapter.adapters.csv.rows import RowProblem, row_to_event, row_values
from tests.fuzz.harness import FUZZ, any_bytes, mutated, outcome, with_prefix

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
LAYOUT = CsvLayout()
HEADER = (
    b"appointment_id,event,status,slot_start,slot_end,duration_minutes,patient_ref,"
    b"provider_code,location_code,department_code,service_code,reason,site,updated_at\r\n"
)
SEEDS = [
    HEADER + b"A1,,booked,2025-04-01T09:00:00,2025-04-01T09:30:00,,MRN-1,1234567893,CLINIC-A,"
    b"CARDIO,99213,Follow-up,,2025-03-01T08:00:00-06:00\r\n"
    b'A2,rescheduled,Scheduled,2025-04-02 10:00,,45,MRN-2,,,,,"Re-check, fasting",S1,\r\n'
    b"A3,,cancelled,2025-04-03T11:00:00+02:00,,15.5,MRN-3,,,,,,,\r\n"
    b"A4,,no-show,2025-04-04T08:00:00Z,2025-04-04T08:20:00Z,,MRN-4,,,,,,,\r\n",
    HEADER.replace(b",", b";") + b"A5;;checked in;2025-04-05T09:00;;30;MRN-5;;;;;;;\r\n",
]


def _import(raw: bytes) -> list[Event | RowProblem]:
    """What the import does with a file: read its header and rows; map each row."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        path.write_bytes(raw)
        with CsvReader(path, LAYOUT) as reader:
            positions = LAYOUT.positions(reader.header)
            results: list[Event | RowProblem] = []
            for row in reader:
                values = row_values(row.values, positions, LAYOUT)
                try:
                    results.append(
                        row_to_event(
                            values, LAYOUT, source_system="csv", site=None,
                            default_tz="America/Chicago", recorded_at=NOW,
                            fallback_version_ms=1,
                        )
                    )  # fmt: skip
                except RowProblem as problem:
                    results.append(problem)
            return results


ERRORS = (MappingError, UnicodeDecodeError, csv.Error)


@FUZZ
@given(any_bytes() | with_prefix(HEADER, any_bytes()))
def test_csv_import_arbitrary_files(raw: bytes) -> None:
    outcome(lambda: _import(raw), ERRORS)


@FUZZ
@given(mutated(SEEDS, segment=b"\r\n", field=b",", separators=b',;"\r\n'))
def test_csv_import_mutated_files(raw: bytes) -> None:
    outcome(lambda: _import(raw), ERRORS)


def test_megabyte_files_are_read_in_time() -> None:
    big = 1024 * 1024
    row = SEEDS[0].splitlines(keepends=True)[1]
    for raw in (
        HEADER + row * (big // len(row)),
        HEADER + b"A1,,booked," + b"x" * big + b"\r\n",
        HEADER + b'"' * big,
        HEADER + b"," * big + b"\r\n",
        HEADER + b"A1,,booked,2025-04-01T09:00:00,," + b"9" * 5000 + b",MRN-1,,,,,,,\r\n",
    ):
        outcome(lambda raw=raw: _import(raw), ERRORS, seconds=5)


# -- found by these properties ------------------------------------------------------------


def test_absurd_durations_are_row_problems() -> None:
    # Were OverflowError (timedelta, datetime) and decimal.Overflow out of row_to_event.
    rows = [
        b"A1,,booked,2025-04-01T09:00:00,," + amount + b",MRN-1,,,,,,,\r\n"
        for amount in (b"9" * 5000, b"1E999999999", b"999999999999")
    ]
    rows.append(b"A1,,booked,9999-12-31T23:50:00,,30,MRN-1,,,,,,,\r\n")
    for row in rows:
        results = outcome(lambda row=row: _import(HEADER + row), ERRORS)
        assert isinstance(results, list)
        (problem,) = results
        assert isinstance(problem, RowProblem)
        assert problem.field == "duration_minutes"
        assert "9999" not in problem.message or "year 9999" in problem.message
