"""End to end: the official FHIR R4 appointment request (``Appointment-examplereq.json``:
proposed, no start) through all five services. It is validated like any appointment, reaches
the mapper, which tracks it and deliberately posts nothing; booked later, the same appointment
raises its forecast as a first booking does."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from carebus_contracts.subjects import STREAM_ERP, STREAM_VALIDATED
from carebus_scenario.observe import wait_quiet
from carebus_scenario.stack import ServiceStack
from tests.support import auth
from tests.support.fhir_examples import EXAMPLES_DIR, fhir_headers
from tests.support.pipeline_probes import (
    MasterData,
    exception_reasons,
    import_master_data,
    stream_events,
)
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.slow

HEADERS = fhir_headers("SITE01")
# What the request names: Location/1 and the specialty 394814009 (general practice).
MASTER_DATA: MasterData = [
    ("cost-centres", [{"cost_centre_id": "CC-GP", "name": "General practice"}]),
    ("locations", [{"location_id": "1", "name": "South Wing", "place_of_service": "11",
                    "time_zone": "America/Chicago", "cost_centre_id": "CC-GP"}]),
    ("departments", [{"department_id": "394814009", "name": "General practice",
                      "cost_centre_id": "CC-GP", "location_id": "1"}]),
]  # fmt: skip


async def _fence(database_url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT entity_key, state, source_event_id FROM carebus_mapper.entity_version"
        )
    finally:
        await conn.close()
    return [(r["entity_key"], r["state"], r["source_event_id"]) for r in rows]


async def test_an_appointment_request_is_tracked_end_to_end_and_posts_nothing(
    stack: ServiceStack,
) -> None:
    endpoints = stack.endpoints
    await import_master_data(endpoints.validator_http, MASTER_DATA)
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    raw = (SAMPLES / EXAMPLES_DIR / "Appointment-examplereq.json").read_bytes()
    async with httpx.AsyncClient(
        base_url=endpoints.scheduling_http, timeout=30, headers=auth.HEADERS
    ) as scheduling:
        reply = await scheduling.put("/fhir/Appointment/examplereq", content=raw, headers=HEADERS)
        assert reply.status_code == 200, reply.text
        await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

        [validated] = await stream_events(endpoints.nats_url, STREAM_VALIDATED)
        assert validated["event_type"] == "validated.appointment.requested"
        assert validated["entity_key"] == "123"
        assert validated["enrichment"]["location_id"] == "1"
        assert validated["enrichment"]["cost_centre"] == "CC-GP"
        # Tracked: the mapper applied it (the appointment's state is "requested")...
        [(key, state, source_event_id)] = await _fence(endpoints.database_url)
        assert (key, state) == ("123", "requested")
        assert source_event_id == validated["original"]["event_id"]
        # ...and posted nothing, deliberately: no journal, no exception.
        assert await stream_events(endpoints.nats_url, STREAM_ERP) == []
        assert await exception_reasons(endpoints.database_url) == []

        # Booked later (same resource, now with its time): a first activation.
        booked = json.loads(raw) | {
            "status": "booked",
            "start": "2016-06-03T09:00:00-05:00",
            "end": "2016-06-03T09:15:00-05:00",
        }
        reply = await scheduling.put(
            "/fhir/Appointment/examplereq", content=json.dumps(booked), headers=HEADERS
        )
        assert reply.status_code == 200, reply.text
        await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    journals = [e for e in await stream_events(endpoints.nats_url, STREAM_ERP)
                if e["event_type"] == "erp.journal.requested"]  # fmt: skip
    [journal] = journals
    assert journal["mapping_rule"] == "appointment-reactivated"
    assert journal["posting_date"] == "2016-06-03"
    assert {(line["account"], line["side"]) for line in journal["lines"]} == {
        ("9100", "debit"),
        ("9199", "credit"),
    }
    [(_, state, _)] = await _fence(endpoints.database_url)
    assert state == "booked"
    assert await exception_reasons(endpoints.database_url) == []
