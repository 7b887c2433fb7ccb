"""Re-driving kept inputs over HTTP: the same path as the first time, then marked redriven."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from carebus_shared.auth.client import acting_for
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.exceptions import store
from carebus_shared.exceptions.store import ExceptionRecord
from tests.support import auth
from tests.support.partitions import unpartitioned
from tests.support.scheduling import (
    Adapter,
    MllpClient,
    kept_records,
    provision_all,
    read_ack,
    record_by_id,
    running_adapter,
    settings_for,
    siu_message,
    stored_events,
)

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def redrive_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scheduling-redrive-nats"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
async def adapter(redrive_nats: NatsServer, database_url: str) -> AsyncIterator[Adapter]:
    await provision_all(redrive_nats.url)
    async with running_adapter(settings_for(redrive_nats.url, database_url)) as running:
        yield running


async def _redrive(
    adapter: Adapter, record_id: int, corrected: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    reply = await adapter.http.post(
        f"/v1/exceptions/{record_id}/redrive",
        content=corrected or b"",
        # The tests' client may name the person it acts for (as the ops console does).
        headers=acting_for(auth.KEY, "alice"),
    )
    return reply.status_code, reply.json()


async def test_a_rejected_hl7_message_is_redriven_once_corrected(
    adapter: Adapter, redrive_nats: NatsServer, database_url: str
) -> None:
    broken = siu_message("RD-1", slot="")
    client = await MllpClient.connect(adapter.mllp_port)
    try:
        assert read_ack(await client.send(broken)).code == "AE"
    finally:
        await client.close()
    [record] = await kept_records(database_url, "hl7", broken)

    status, reply = await _redrive(adapter, record["id"])
    assert status == 422
    assert reply["outcome"] == "rejected"
    assert reply["reason"] == "required_field_missing"
    assert (await record_by_id(database_url, record["id"]))["status"] == "open"

    status, reply = await _redrive(adapter, record["id"], siu_message("RD-1"))
    assert status == 200, reply
    assert reply["outcome"] == "redriven"
    [event_id] = reply["event_ids"]
    assert event_id.startswith("hl7:CADENCE:SITE01:RD-1:")
    assert event_id in {s.msg_id for s in await stored_events(redrive_nats.url)}
    resolved = await record_by_id(database_url, record["id"])
    assert resolved["status"] == "redriven"
    assert resolved["resolved_by"] == "alice"
    assert event_id in resolved["resolution_note"]

    status, reply = await _redrive(adapter, record["id"])
    assert status == 409
    assert reply["outcome"] == "not_open"


async def test_a_refused_fhir_request_is_redriven_the_way_it_came(
    adapter: Adapter, redrive_nats: NatsServer, database_url: str
) -> None:
    resource = (
        '{"resourceType":"Appointment","id":"rd-2","meta":{"versionId":"4"},"status":"arrived",'
        '"start":"2025-03-10T09:15:00-06:00",%s'
        '"participant":[{"actor":{"reference":"Patient/MRN-2"}}]}'
    )
    refused = (resource % "").encode()
    reply = await adapter.http.put("/fhir/Appointment/rd-2", content=refused, headers=FHIR_JSON)
    assert reply.status_code == 422
    [record] = await kept_records(database_url, "fhir", refused)
    assert record["reason"] == "missing_end"

    corrected = (resource % '"minutesDuration":20,').encode()
    status, body = await _redrive(adapter, record["id"], corrected)
    assert status == 200, body
    assert body["event_ids"] == ["fhir:fhir:rd-2:4"]
    stored = {s.msg_id: s for s in await stored_events(redrive_nats.url)}
    event = stored["fhir:fhir:rd-2:4"]
    assert unpartitioned(event.subject) == "scheduling.appointment.checked_in.v1.SITE01"
    assert event.event["appointment"]["slot_end"] == "2025-03-10T09:35:00-06:00"


async def test_a_rejected_csv_row_is_redriven_with_the_mapping_it_was_read_with(
    adapter: Adapter, redrive_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\nappointment_id = "No"\n[format]\nsource_system = "nightly"\n')
    header = "No,status,slot_start,duration_minutes,patient_ref\n"
    source = tmp_path / "rows.csv"
    source.write_text(header + "C-1,booked,2025-05-01T10:00:00,abc,MRN-3\n")
    env = {**os.environ, "NATS_URL": redrive_nats.url, "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carebus_scheduling_adapter.entrypoints.cli", "import",
        str(source), "--mapping", str(mapping), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 60) == 1
    raw = (header + "C-1,booked,2025-05-01T10:00:00,abc,MRN-3\n").encode()
    [record] = await kept_records(database_url, "csv", raw)
    assert record["reason"] == "invalid_number"

    corrected = (header + "C-1,booked,2025-05-01T10:00:00,45,MRN-3\n").encode()
    status, body = await _redrive(adapter, record["id"], corrected)
    assert status == 200, body
    [event_id] = body["event_ids"]
    assert event_id.startswith("csv:nightly:C-1:")  # the mapping's source system
    stored = {s.msg_id: s for s in await stored_events(redrive_nats.url)}
    assert stored[event_id].event["appointment"]["slot_end"] == "2025-05-01T10:45:00Z"


async def test_unknown_and_foreign_records_are_not_redriven(
    adapter: Adapter, database_url: str
) -> None:
    status, body = await _redrive(adapter, 987_654_321)
    assert status == 404
    assert body["outcome"] == "not_found"

    conn = await asyncpg.connect(database_url)
    try:
        foreign = await store.record(
            conn,
            ExceptionRecord(
                dedupe_key="redrive-test:MAPPER:1", stage="mapper", category="mapping",
                reason="no_rule", message="no mapping rule", source="jetstream",
                stream="VALIDATED", stream_seq=1, subject="validated.x", raw=b"{}",
            ),
        )  # fmt: skip
    finally:
        await conn.close()
    assert foreign is not None
    status, body = await _redrive(adapter, foreign)
    assert status == 409
    assert body["outcome"] == "not_redrivable_here"
    assert "carebus exceptions redrive" in body["detail"]
