"""`carebus-scheduling import` as a real process against real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import os
import pty
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from tests.support.partitions import unpartitioned
from tests.support.scheduling import kept_records, provision_all, stored_events, stream_count

CLI = [sys.executable, "-m", "carebus_scheduling_adapter.entrypoints.cli", "import"]
HEADER = [
    "appointment_id", "status", "slot_start", "slot_end", "duration_minutes", "patient_ref",
    "provider_code", "location_code", "department_code", "service_code", "reason", "updated_at",
]  # fmt: skip
BAD_ROWS = {
    # row index → (column, reason)
    100: ("patient_ref", "missing_value"),
    700: ("status", "unknown_status"),
    1500: ("slot_start", "invalid_datetime"),
    2100: ("slot_end", "slot_ends_before_start"),
    2400: ("duration_minutes", "invalid_number"),
}
ROWS = 2500


@pytest.fixture(scope="module")
def csv_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scheduling-csv-nats"))
    server.start()
    asyncio.run(provision_all(server.url))
    yield server
    server.stop(kill=True)


def _row(i: int) -> list[str]:
    row = [
        f"A{i:05d}", "booked" if i % 3 else "cancelled", f"2025-04-{1 + i % 28:02d}T09:00:00",
        f"2025-04-{1 + i % 28:02d}T09:30:00", "", f"MRN-{i % 97}", "1234567893", "CLINIC-A",
        "CARDIO", "99213", "Follow-up", f"2025-03-01T08:{i % 60:02d}:00-06:00",
    ]  # fmt: skip
    if i in BAD_ROWS:
        column, _ = BAD_ROWS[i]
        position = HEADER.index(column)
        if column == "slot_end":
            row[position] = "2025-04-01T08:00:00"
            row[2] = "2025-04-01T09:00:00"
        elif column == "duration_minutes":
            row[3], row[position] = "", "half an hour"
        else:
            row[position] = {"patient_ref": "", "status": "pencilled-in", "slot_start": "soon"}[
                column
            ]
    return row


def _write(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ","
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def _env(nats_url: str, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CAREBUS_SCHEDULING_ADAPTER_DEFAULT_TZ": "America/Chicago",
        "CAREBUS_SCHEDULING_ADAPTER_SITE": "SITE01",
    }


async def _run(args: list[str], env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _summary(stdout: str) -> dict[str, int]:
    found = re.findall(r"^(rows read|published|already there|rejected) +([\d,]+)", stdout, re.M)
    return {label: int(number.replace(",", "")) for label, number in found}


async def test_import_publishes_valid_rows_keeps_bad_ones_and_a_reimport_adds_nothing(
    csv_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "appointments.csv"
    rows = [_row(i) for i in range(ROWS)]
    _write(source, rows)
    env = _env(csv_nats.url, database_url)
    before = await stream_count(csv_nats.url)

    code, out, err = await _run([str(source)], env)
    assert code == 1, err  # some rows rejected
    good = ROWS - len(BAD_ROWS)
    assert _summary(out) == {
        "rows read": ROWS, "published": good, "already there": 0, "rejected": len(BAD_ROWS)
    }  # fmt: skip
    assert await stream_count(csv_nats.url) == before + good

    rejects = source.with_name("appointments.csv.rejects.csv")
    with rejects.open(newline="") as handle:
        reject_rows = list(csv.DictReader(handle))
    assert [(r["carebus_column"], r["carebus_reason"]) for r in reject_rows] == list(
        BAD_ROWS.values()
    )
    assert [int(r["carebus_line"]) for r in reject_rows] == [i + 2 for i in BAD_ROWS]
    assert reject_rows[0]["appointment_id"] == "A00100"
    for index, (column, reason) in BAD_ROWS.items():
        raw = (",".join(HEADER) + "\n" + _csv_line(rows[index])).encode()
        [record] = await kept_records(database_url, "csv", raw)
        assert record["reason"] == reason
        assert record["path"] == column
        assert record["content_type"] == "text/csv"

    stored = [s for s in await stored_events(csv_nats.url) if s.msg_id.startswith("csv:")]
    first = next(s for s in stored if s.event["entity_key"] == "A00001")
    assert first.msg_id == "csv:csv-import:A00001:2025-03-01T08:01:00-06:00"
    assert unpartitioned(first.subject) == "scheduling.appointment.booked.v1.SITE01"
    assert first.event["appointment"]["slot_start"] == "2025-04-02T09:00:00-05:00"  # CDT
    cancelled = next(s for s in stored if s.event["entity_key"] == "A00003")
    assert unpartitioned(cancelled.subject) == "scheduling.appointment.cancelled.v1.SITE01"

    code, out, err = await _run([str(source)], env)
    assert code == 1, err
    assert _summary(out) == {
        "rows read": ROWS, "published": 0, "already there": good, "rejected": len(BAD_ROWS)
    }  # fmt: skip
    assert await stream_count(csv_nats.url) == before + good
    for index in BAD_ROWS:
        raw = (",".join(HEADER) + "\n" + _csv_line(rows[index])).encode()
        assert len(await kept_records(database_url, "csv", raw)) == 1


def _csv_line(row: list[str]) -> str:
    return ",".join(f'"{v}"' if ("," in v or '"' in v) else v for v in row) + "\n"


async def test_a_mapping_file_reads_another_layout(
    csv_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "clinic.toml"
    mapping.write_text(
        """
[columns]
appointment_id = "ApptNo"
status = "State"
slot_start = "Start"
duration_minutes = "Minutes"
patient_ref = "MRN"
provider_code = "Doctor"

[values.status]
"Scheduled" = "booked"
"Arrived" = "checked_in"

[format]
delimiter = ";"
timezone = "Europe/Paris"
datetime_format = "%d/%m/%Y %H:%M"
source_system = "clinic-export"
site = "PARIS"
"""
    )
    source = tmp_path / "export.csv"
    _write(
        source,
        [["X-1", "Scheduled", "10/03/2025 09:15", "20", "P-1", "D7"],
         ["X-2", "Arrived", "10/03/2025 10:00", "15", "P-2", "D7"]],
        header=["ApptNo", "State", "Start", "Minutes", "MRN", "Doctor"],
        delimiter=";",
    )  # fmt: skip
    code, out, err = await _run(
        [str(source), "--mapping", str(mapping)], _env(csv_nats.url, database_url)
    )
    assert code == 0, err
    assert _summary(out)["published"] == 2
    stored = {s.event["entity_key"]: s for s in await stored_events(csv_nats.url)}
    booked, arrived = stored["X-1"], stored["X-2"]
    assert unpartitioned(booked.subject) == "scheduling.appointment.booked.v1.PARIS"
    assert booked.msg_id.startswith("csv:clinic-export:X-1:")
    assert booked.event["appointment"]["slot_start"] == "2025-03-10T09:15:00+01:00"
    assert booked.event["appointment"]["slot_end"] == "2025-03-10T09:35:00+01:00"
    assert booked.event["appointment"]["provider_code"] == "D7"
    assert unpartitioned(arrived.subject) == "scheduling.appointment.checked_in.v1.PARIS"


async def test_a_header_without_required_columns_is_refused(
    csv_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "wrong.csv"
    _write(source, [["1", "2"]], header=["id", "when"])
    code, _, err = await _run([str(source)], _env(csv_nats.url, database_url))
    assert code == 2
    assert "lacks required columns: appointment_id, status, slot_start, patient_ref" in err


async def test_import_says_so_when_nats_is_unreachable(database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    _write(source, [_row(1)])
    env = _env(f"nats://127.0.0.1:{free_port()}", database_url)
    code, _, err = await _run([str(source), "--connect-timeout", "2"], env)
    assert code == 3
    assert "did not answer within 2 s" in err


async def test_progress_bar_is_drawn_on_a_terminal(
    csv_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "tty.csv"
    _write(source, [_row(i) for i in range(3000, 3300)])
    main_fd, terminal_fd = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *CLI, str(source), env=_env(csv_nats.url, database_url),
            stdout=asyncio.subprocess.DEVNULL, stderr=terminal_fd,
        )  # fmt: skip
        os.close(terminal_fd)
        code = await asyncio.wait_for(proc.wait(), 60)
        drawn = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the terminal side is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(main_fd)
    assert code == 0
    assert b"\rtty.csv [##############################] 100% 300 rows" in drawn
