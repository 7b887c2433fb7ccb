"""`carebus reconcile` against real NATS and PostgreSQL on a few hand-made events: what it
reads, keeps and exposes, its exit statuses, and the scheduled mode stopped by SIGTERM.

Site S1 is registered in master data (a location names it), S9 is not. On today's date: a
completed visit at S1 charged twice, one charge posted and confirmed, the other never
posted; a completed visit at S9 never charged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import masterdata as md
from carebus_contracts.billing import ChargePosted
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.examples import build_examples
from carebus_contracts.scheduling import AppointmentCompleted
from carebus_scenario.stack import provision_stack
from carebus_shared.auth import scopes
from carebus_shared.auth.client import bearer
from carebus_shared.cli.provision import provision_all
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.topology import MASTERDATA_VIEW_BUCKET
from tests.support import auth
from tests.support.reconcile import command, differences, environment, reconcile
from tests.support.stacks import own_database

TODAY = dt.datetime.now(dt.UTC).date()
NOON = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)
EXAMPLES = {event.event_type: event for event, _ in build_examples()}
IDS = ("A1", "A9", "CH1", "CH2", "MRN")  # none may reach a label, a log line or an error


def example(event_type: str) -> Event:
    return EXAMPLES[event_type]


def completed(site: str, appointment_id: str) -> AppointmentCompleted:
    event = example("scheduling.appointment.completed")
    assert isinstance(event, AppointmentCompleted)
    appointment = msgspec.structs.replace(
        event.appointment, appointment_id=appointment_id, patient_ref=f"MRN{appointment_id}",
        slot_start=NOON, slot_end=NOON + dt.timedelta(minutes=30),
    )  # fmt: skip
    return msgspec.structs.replace(
        event, event_id=f"ev-{appointment_id}", site=site, entity_key=appointment_id,
        appointment=appointment, recorded_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip


def charge(charge_id: str, appointment_id: str) -> ChargePosted:
    event = example("billing.charge.posted")
    assert isinstance(event, ChargePosted)
    line = msgspec.structs.replace(
        event.charge, charge_id=charge_id, appointment_id=appointment_id, service_date=TODAY
    )
    return msgspec.structs.replace(
        event, event_id=f"ev-{charge_id}", site="S1", entity_key=charge_id, charge=line,
        recorded_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip


def journal_request(source: Event) -> JournalEntryRequested:
    event = example("erp.journal.requested")
    assert isinstance(event, JournalEntryRequested)
    return msgspec.structs.replace(
        event, event_id=f"ev-je-{source.entity_key}", site="S1", posting_date=TODAY,
        journal_id=f"JE-{source.entity_key}", entity_key=f"JE-{source.entity_key}",
        source_event_ids=(source.event_id,),
    )  # fmt: skip


def location(site: str) -> md.LocationChanged:
    event = example("masterdata.location.changed")
    assert isinstance(event, md.LocationChanged)
    return msgspec.structs.replace(
        event, location=msgspec.structs.replace(event.location, site_code=site)
    )


_ENTRY = """
WITH e AS (
    INSERT INTO carebus_erp_poster.journal_entry
        (idempotency_key, journal_id, company, site, posting_date, description,
         source_event_id, correlation_id)
    VALUES ($1, $1, $2, $3, $4, 'charge', $5, $6) RETURNING entry_id
)
INSERT INTO carebus_erp_poster.journal_line
    (entry_id, line_number, account, side, amount_minor, currency)
SELECT e.entry_id, l.n, l.account, l.side, $7, 'USD' FROM e,
       (VALUES (1, '1200', 'debit'), (2, '4000', 'credit')) AS l(n, account, side)
"""
_CONFIRMED = """
INSERT INTO carebus_erp_poster.journal_status
    (journal_id, connector, status, event_id, site, correlation_id, entity_version,
     stream_seq, subject, posted_at, confirmed_at, document_number)
VALUES ($1, 'ledger', 'confirmed', $2, $3, $4, 1, 1, 'erp.journal.requested.v1.S1', now(),
        now(), 'GL-1')
"""


@dataclass(frozen=True)
class Suite:
    nats_url: str
    database_url: str


@pytest.fixture
async def suite(database_url: str, private_nats: NatsServer) -> AsyncIterator[Suite]:
    async with own_database(database_url, "carebus_rec") as db:
        await provision_stack(private_nats.url, db)
        await record_a_day(private_nats.url, db)
        yield Suite(private_nats.url, db)


async def record_a_day(nats_url: str, db: str) -> None:
    request = journal_request(charge("CH1", "A1"))
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        events = [completed("S1", "A1"), charge("CH1", "A1"), charge("CH2", "A1"),
                  completed("S9", "A9"), request]  # fmt: skip
        for event in events:
            await js.publish(subject_for(event), encode(event), headers=headers_for(event))
        await js.publish(f"$KV.{MASTERDATA_VIEW_BUCKET}.location.TDEt", encode(location("S1")))
    finally:
        await nc.close()
    conn = await asyncpg.connect(db)
    try:
        async with conn.transaction():
            amount = request.lines[0].amount.amount_minor
            await conn.execute(_ENTRY, request.journal_id, request.company, "S1", TODAY,
                               request.event_id, request.correlation_id, amount)  # fmt: skip
            await conn.execute(_CONFIRMED, request.journal_id, request.event_id, "S1",
                               request.correlation_id)  # fmt: skip
    finally:
        await conn.close()


STRICT = ("--settle", "0", "--charge-lag", "0")
EXPECTED = {
    ("S1", "charged_without_posting", "charge", "CH2"),
    ("S9", "completed_without_charge", "appointment", "A9"),
}


def found(report: str) -> set[tuple[str, str, str, str]]:
    return {(d["site"], d["kind"], d["entity"], d["entity_id"]) for d in differences(report)}


async def test_once_it_reports_keeps_and_exits_1_on_what_nobody_explains(suite: Suite) -> None:
    done = await asyncio.to_thread(
        reconcile, suite.nats_url, suite.database_url, "--format", "json", *STRICT
    )
    assert done.returncode == 1, done.stderr
    assert found(done.stdout) == EXPECTED
    assert "kept as run 1" in done.stderr
    assert not any(i in done.stderr for i in IDS)
    conn = await asyncpg.connect(suite.database_url)
    try:
        runs = await conn.fetch("SELECT * FROM carebus_reconcile.run")
        assert [(r["unexplained"], r["explained"], r["site"]) for r in runs] == [(2, 0, None)]
        kept = await conn.fetch(
            "SELECT site, kind, entity, entity_id, journal_ids, explanation "
            "FROM carebus_reconcile.difference ORDER BY site"
        )
        assert {(r["site"], r["kind"], r["entity"], r["entity_id"]) for r in kept} == EXPECTED
        latest = await conn.fetch("SELECT * FROM carebus_reconcile.latest_site_day ORDER BY site")
        assert [(r["site"], r["day"], r["unexplained"]) for r in latest] == [
            ("S1", TODAY, 1), ("S9", TODAY, 1),
        ]  # fmt: skip
        figures = msgspec.json.decode(latest[0]["figures"])
        assert figures["source"]["charges"]["count"] == 2
        assert figures["source"]["charges"]["posted"] == 1
        assert figures["ledger"]["postings"] == 1
    finally:
        await conn.close()


async def test_once_for_one_site_without_keeping_and_in_flight_is_exit_0(suite: Suite) -> None:
    one = await asyncio.to_thread(
        reconcile, suite.nats_url, suite.database_url, "--site", "S1", "--format", "csv",
        "--no-keep", *STRICT,
    )  # fmt: skip
    assert one.returncode == 1
    rows = one.stdout.splitlines()
    assert rows[0].startswith("row,site,day,name,currency,count")
    assert any(r.startswith(f"difference,S1,{TODAY},charge,") and ",CH2," in r for r in rows)
    assert not any(",S9," in r for r in rows)
    assert "kept" not in one.stderr
    # With the default settle time and charge lag, what was just recorded is in flight.
    table = await asyncio.to_thread(reconcile, suite.nats_url, suite.database_url, "--no-keep")
    assert table.returncode == 0, table.stdout
    assert "(in flight)" in table.stdout
    assert "UNEXPLAINED" not in table.stdout
    conn = await asyncpg.connect(suite.database_url)
    try:
        # Provisioned like `carebus provision` (the results schema exists): nothing kept in it.
        assert await conn.fetchval("SELECT count(*) FROM carebus_reconcile.run") == 0
    finally:
        await conn.close()


def test_it_exits_2_when_it_cannot_reach_nats() -> None:
    port = free_port()
    done = reconcile(f"nats://127.0.0.1:{port}", "postgresql://127.0.0.1:1/none")
    assert done.returncode == 2
    assert done.stderr.startswith("reconcile: could not run:")
    assert done.stdout == ""


def scrape(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth.HEADERS)
    with urllib.request.urlopen(request, timeout=2) as response:
        text: str = response.read().decode()
        return text


@pytest.fixture
def every(suite: Suite, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "reconcile.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command("--every", "1s", "--metrics-port", str(port), *STRICT),
            env=environment(suite.nats_url, suite.database_url),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


_SERIES = re.compile(
    r'^carebus_reconcile_differences\{kind="(\w+)",site="(\w+)",state="(\w+)"\} (\S+)$'
)


def differences_series(text: str) -> dict[tuple[str, str, str], float]:
    """(site, kind, state) → value of the differences gauge."""
    found = {}
    for line in text.splitlines():
        match = _SERIES.match(line)
        if match:
            kind, site, state, value = match.groups()
            found[(site, kind, state)] = float(value)
    return found


def runs_done(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('carebus_reconcile_runs_total{outcome="unexplained"}'):
            return float(line.split()[-1])
    return 0.0


async def test_every_interval_it_serves_the_latest_run_as_metrics_until_sigterm(
    every: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = every
    text = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # bounded: a minute
        assert process.poll() is None, log.read_text()
        try:
            text = await asyncio.to_thread(scrape, port)
        except OSError:
            text = ""
        if runs_done(text) >= 2:
            break
        await asyncio.sleep(0.2)
    assert runs_done(text) >= 2, text
    series = differences_series(text)
    assert series[("S1", "charged_without_posting", "unexplained")] == 1
    assert series[("_other", "completed_without_charge", "unexplained")] == 1
    assert series[("S1", "posted_twice", "unexplained")] == 0
    assert {site for site, _, _ in series} == {"S1", "_other"}
    assert 'carebus_reconcile_runs_total{outcome="failed"} 0.0' in text
    assert "carebus_reconcile_last_success_timestamp_seconds" in text
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 15) == 0
    logged = log.read_text()
    assert '"msg":"reconciled"' in logged
    assert '"unexplained":2' in logged
    assert not any(i in logged or i in text for i in IDS)


def status_of(port: int, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


async def test_its_metrics_need_a_credential_with_the_metrics_scope(
    suite: Suite, every: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    process, port, log = every
    reader = await auth.client(suite.database_url, "only-ops", granted=(scopes.OPS_READ,))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded: until it serves
        assert process.poll() is None, log.read_text()
        try:
            await asyncio.to_thread(scrape, port)
            break
        except OSError:
            await asyncio.sleep(0.2)
    assert await asyncio.to_thread(status_of, port, {}) == 401
    assert await asyncio.to_thread(status_of, port, bearer(reader)) == 403
    assert await asyncio.to_thread(status_of, port, auth.HEADERS) == 200
    assert await asyncio.to_thread(status_of, port, bearer("cbk_not-a-key")) == 401


async def test_provision_applies_the_results_schema(
    database_url: str, private_nats: NatsServer
) -> None:
    async with own_database(database_url, "carebus_prov") as db:
        lines = await provision_all(private_nats.url, db)
        assert any(
            line.split() == ["schema", "carebus_reconcile", "applied", "001_reconciliation.sql"]
            for line in lines
        ), lines
        again = await provision_all(private_nats.url, db)
        assert any(line.split() == ["schema", "carebus_reconcile", "unchanged"] for line in again)
