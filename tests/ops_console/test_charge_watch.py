"""Completed without charge (issue #19): the ops console, a real process on a private NATS
and a database of its own, turns a completed appointment no charge names within its site's
wait into a work item and an exception record, and resolves both when the charge arrives."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import billing as b
from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support.mapper import appointment, fresh_database
from tests.support.ops_console import SITE, charge_for, for_patient, location
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.slow

PATIENT_SITE = "SITE02"  # waits ten years for its charges: nothing there is overdue
LATE_SITE = "SITE03"  # waits an hour


async def _publish(js: JetStreamContext, events: list[Event]) -> None:
    await publish_confirmed(
        js,
        [Outgoing(subject_for(e), encode(e), e.event_id, {**headers_for(e)}) for e in events],
    )


async def _until(conn: asyncpg.Connection, query: str, expected: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (got := await conn.fetch(query)) == expected or [tuple(r) for r in got] == expected:
            return
        await asyncio.sleep(0.2)
    steps = await conn.fetch("SELECT kind, entity_key, status FROM carebus_ops.step")
    raise AssertionError(
        f"timed out waiting for {what}: {[tuple(r) for r in got]}; "
        f"tracked: {[tuple(r) for r in steps]}"
    )


@pytest.fixture
async def stack(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[JetStreamContext, asyncpg.Connection]]:
    server = NatsServer(tmp_path_factory.mktemp("watch-nats"))
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await provision(js, TOPOLOGY)
    async with fresh_database(database_url) as db_url:
        port = free_port()
        env = {
            "NATS_URL": server.url,
            "DATABASE_URL": db_url,
            "CAREBUS_OPS_CONSOLE_HTTP_PORT": str(port),
            "CAREBUS_OPS_CONSOLE_FIGURES_REFRESH_S": "0.3",
            "CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H": "0",
            "CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_SITE_H": (
                f"{PATIENT_SITE}=87600,{LATE_SITE}=1"
            ),
            "CAREBUS_OPS_CONSOLE_SERVICE_URLS": f"mapper=http://127.0.0.1:{free_port()}",
            "CAREBUS_SHUTDOWN_GRACE_S": "5",
        }
        argv = [sys.executable, "-m", "carebus_ops.entrypoints.cli", "serve"]
        logs = tmp_path_factory.mktemp("watch-logs")
        process = ServiceProcess(argv, env, port, logs / "ops.log").start()
        conn = await asyncpg.connect(db_url)
        try:
            await asyncio.to_thread(process.wait_ready, 60)
            yield js, conn
        finally:
            await conn.close()
            process.kill()
            await nc.close()
            server.stop()


def _patient_charge(charge_id: str, appointment_id: str, patient_ref: str) -> b.ChargePosted:
    posted = charge_for(charge_id, appointment_id)
    body = msgspec.structs.replace(posted.charge, patient_ref=patient_ref)
    return msgspec.structs.replace(posted, charge=body)


ITEMS = (
    "SELECT appointment_id, site, resolution FROM carebus_ops.charge_watch ORDER BY appointment_id"
)
RECORDS = (
    "SELECT event_id, site, category, reason, status FROM carebus_exceptions.exception_record "
    "WHERE stage = 'ops-console' ORDER BY event_id"
)


async def test_a_completed_visit_without_charge_is_opened_and_resolved_by_its_charge(
    stack: tuple[JetStreamContext, asyncpg.Connection],
) -> None:
    js, conn = stack
    # Each visit its own patient: a charge finds its appointment by id or by visit.
    done = for_patient(appointment(s.AppointmentCompleted, "W-1", 1), "MRN-W1")
    charged = for_patient(appointment(s.AppointmentCompleted, "W-2", 1), "MRN-W2")
    waiting = for_patient(
        appointment(s.AppointmentCompleted, "W-3", 1, site=PATIENT_SITE), "MRN-W3"
    )
    booked = for_patient(appointment(s.AppointmentBooked, "W-4", 1), "MRN-W4")
    # Completed long ago but sent only now (a backfill): its hour starts now, not then.
    late = for_patient(appointment(s.AppointmentCompleted, "W-6", 1, site=LATE_SITE), "MRN-W6")
    late = msgspec.structs.replace(late, recorded_at=datetime.now(UTC))
    # Completed later than now by its own time (a day played at today's date, as the demo
    # does): its wait starts then, so it is not due yet.
    ahead = for_patient(appointment(s.AppointmentCompleted, "W-7", 1), "MRN-W7")
    ahead = msgspec.structs.replace(ahead, occurred_at=datetime.now(UTC) + timedelta(hours=1))
    by_visit = for_patient(appointment(s.AppointmentCompleted, "W-5", 1), "MRN-W5")
    # The billing system's own visit number: no appointment id, the same patient and day.
    visit_charge = _patient_charge("CH-W5", "W-5", "MRN-W5")
    visit_charge = msgspec.structs.replace(
        visit_charge, charge=msgspec.structs.replace(visit_charge.charge, appointment_id=None)
    )
    await _publish(
        js,
        [
            location(SITE), done, charged, waiting, booked, by_visit, late, ahead,
            _patient_charge("CH-W2", "W-2", "MRN-W2"), visit_charge,
        ],
    )  # fmt: skip
    # Only W-1: W-2 has its charge, W-3's site waits ten years, W-4 is not completed, W-5's
    # charge is its visit's, W-6 reached carebus less than its site's hour ago, W-7 completes
    # in an hour. W-1 never reaches VALIDATED, as a visit parked in quarantine: it counts
    # (docs/decisions/025, addendum).
    await _until(conn, ITEMS, [("W-1", SITE, None)], "W-1's work item")
    await _until(
        conn,
        RECORDS,
        [(done.event_id, SITE, "revenue_integrity", "completed_without_charge", "open")],
        "its exception record",
    )
    await asyncio.sleep(1.0)  # several sweeps later: still one item, one record
    assert [tuple(r) for r in await conn.fetch(ITEMS)] == [("W-1", SITE, None)]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM carebus_exceptions.exception_record WHERE stage = 'ops-console'"
        )
        == 1
    )

    await _publish(js, [_patient_charge("CH-W1", "W-1", "MRN-W1")])
    await _until(conn, ITEMS, [("W-1", SITE, "charge_arrived")], "the item resolved")
    await _until(
        conn,
        RECORDS,
        [(done.event_id, SITE, "revenue_integrity", "completed_without_charge", "resolved")],
        "the record resolved",
    )
    history = await conn.fetch(
        "SELECT a.action, a.outcome, a.note FROM carebus_exceptions.exception_action a "
        "JOIN carebus_exceptions.exception_record r ON r.id = a.record_id "
        "WHERE r.stage = 'ops-console'"
    )
    assert [tuple(r) for r in history] == [("auto_resolve", "resolved", "charge_arrived")]
