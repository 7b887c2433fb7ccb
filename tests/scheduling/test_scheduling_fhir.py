"""FHIR R4 Appointment over HTTP into the running adapter (real NATS and PostgreSQL), the
official R4 examples among them.

Accepted requests are answered after JetStream stored their events; refused ones get a 4xx
OperationOutcome naming the element, and are kept in the exception store with the body.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from carebus_shared.devstack.nats_server import NatsServer
from tests.support.fhir_examples import bundle_of, expectations
from tests.support.partitions import unpartitioned
from tests.support.scheduling import (
    Adapter,
    kept_records,
    provision_all,
    running_adapter,
    settings_for,
    stored_events,
    stream_count,
)

FHIR_JSON = {"Content-Type": "application/fhir+json"}
# The official R4 Appointment examples (hl7.fhir.r4.examples 4.0.1) and their committed
# outcomes (tests/fhir/official_example_expectations.tsv).
EXAMPLES = expectations("scheduling")
EXPECTED_SAMPLE_DIR = (
    "fhir-r4/microsoft-FHIR-Converter-expected/src/"
    "Microsoft.Health.Fhir.Liquid.Converter.FunctionalTests/TestData/Expected/Hl7v2"
)
# The converter writes every Appointment as a PUT: an update, so "modified" unless the
# status is itself the event.  DFT/BAR conversions carry no Appointment.
SAMPLE_OUTCOMES = {
    "SIU_S12": ("modified", "booked", None),
    "SIU_S13": ("modified", "booked", None),
    "SIU_S14": ("modified", "booked", None),
    "SIU_S15": ("cancelled", "cancelled", "cancelled"),
    "SIU_S16": ("cancelled", "cancelled", "cancelled"),
    "SIU_S17": ("cancelled", "cancelled", "entered-in-error"),
    "SIU_S26": ("no_show", "no_show", None),
}


@pytest.fixture(scope="module")
def fhir_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scheduling-fhir-nats"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
async def adapter(fhir_nats: NatsServer, database_url: str) -> AsyncIterator[Adapter]:
    await provision_all(fhir_nats.url)
    async with running_adapter(settings_for(fhir_nats.url, database_url)) as running:
        yield running


def appointment(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": "appt-1",
        "meta": {"versionId": "1", "lastUpdated": "2025-03-01T10:00:00-06:00"},
        "identifier": [
            {"type": {"coding": [{"code": "FILL"}]}, "value": "F-9001"},
            {"type": {"coding": [{"code": "PLAC"}]}, "value": "P-9001"},
        ],
        "status": "booked",
        "serviceType": [
            {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}
        ],
        "specialty": [{"coding": [{"code": "CARDIO"}]}],
        "reasonCode": [{"text": "Follow-up"}],
        "start": "2025-03-10T09:15:00-06:00",
        "end": "2025-03-10T09:45:00-06:00",
        "participant": [
            {"actor": {"reference": "Patient/pat-7", "identifier": {"value": "MRN-7"}}},
            {"actor": {"reference": "Practitioner/1234567893"}},
            {"actor": {"reference": "Location/CLINIC-A"}},
        ],
    }
    resource.update(changes)
    return resource


def body(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


async def test_every_fhir_sample_bundle_is_stored_or_refused_with_its_reason(
    adapter: Adapter, fhir_nats: NatsServer, database_url: str, samples_dir: Path
) -> None:
    files = sorted((samples_dir / EXPECTED_SAMPLE_DIR).rglob("*-expected.json"))
    assert len(files) == 24
    counts: Counter[str] = Counter()
    for path in files:
        raw = path.read_bytes()
        reply = await adapter.http.post("/fhir", content=raw, headers=FHIR_JSON)
        outcome = SAMPLE_OUTCOMES.get(path.parent.name)
        if outcome is None:
            assert reply.status_code == 422, path.name
            issue = reply.json()["issue"][0]
            assert issue["code"] == "not-supported"
            assert issue["details"]["coding"][0]["code"] == "no_appointment"
            [record] = await kept_records(database_url, "fhir", raw)
            assert record["reason"] == "no_appointment"
            assert record["content_type"] == "application/fhir+json"
            counts["rejected (no Appointment: billing)"] += 1
            continue
        assert reply.status_code == 200, (path.name, reply.text)
        response = reply.json()
        assert response["type"] == "batch-response"
        locations = [e["response"].get("location") for e in response["entry"]]
        [location] = [loc for loc in locations if loc]
        fhir_id, version = location.split("/")[1], location.split("/")[3]
        kind, status, reason = outcome
        stored = {s.msg_id: s.event for s in await stored_events(fhir_nats.url)}
        event = stored[f"fhir:fhir:{fhir_id}:{version}"]
        assert event["event_type"] == f"scheduling.appointment.{kind}"
        assert event["appointment"]["status"] == status
        assert event["appointment"]["reason"] == reason
        assert event["appointment"]["appointment_id"] == "36996"  # the FILL identifier
        counts[f"accepted ({kind})"] += 1
    print("\nFHIR sample Bundles (Microsoft FHIR-Converter expected output):")
    for label, n in sorted(counts.items()):
        print(f"  {label:40} {n}")
    assert counts["rejected (no Appointment: billing)"] == 10


async def test_sample_participants_resolve_inside_the_bundle(
    adapter: Adapter, fhir_nats: NatsServer, samples_dir: Path
) -> None:
    path = samples_dir / EXPECTED_SAMPLE_DIR / "SIU_S12" / "SIU-S12-01-expected.json"
    reply = await adapter.http.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
    assert reply.status_code == 200
    [location] = [
        e["response"]["location"] for e in reply.json()["entry"] if "location" in e["response"]
    ]
    stored = {s.msg_id: s.event for s in await stored_events(fhir_nats.url)}
    appt = stored[f"fhir:fhir:{location.split('/')[1]}:{location.split('/')[3]}"]["appointment"]
    # Patient → its MR identifier; Practitioner → its identifier; Location → its name (no
    # identifier); basedOn ServiceRequest → its code: what HL7 AIP/AIL/AIS of the same
    # appointment give (tests/hl7: provider 1210, location 055, service 76164006).
    assert appt["patient_ref"] == "1234567"
    assert appt["provider_code"] == "1210"
    assert appt["location_code"] == "055"
    assert appt["service_code"] == "76164006"
    assert appt["slot_start"] == "2021-09-24T12:45:00+05:30"


async def test_create_answers_201_after_the_event_is_stored_and_a_resend_adds_nothing(
    adapter: Adapter, fhir_nats: NatsServer
) -> None:
    resource = appointment(id="create-1", meta={"versionId": "3"})
    reply = await adapter.http.post("/fhir/Appointment", content=body(resource), headers=FHIR_JSON)
    assert reply.status_code == 201, reply.text
    assert reply.headers["location"] == "Appointment/create-1/_history/3"
    assert reply.headers["content-type"].startswith("application/fhir+json")
    assert reply.json()["id"] == "create-1"
    stored = {s.msg_id: s for s in await stored_events(fhir_nats.url)}
    event = stored["fhir:fhir:create-1:3"]
    assert unpartitioned(event.subject) == "scheduling.appointment.booked.v1.SITE01"
    appt = event.event["appointment"]
    assert appt == {
        "appointment_id": "F-9001",
        "patient_ref": "MRN-7",
        "provider_code": "1234567893",
        "location_code": "CLINIC-A",
        "department_code": "CARDIO",
        "service_code": "99213",
        "slot_start": "2025-03-10T09:15:00-06:00",
        "slot_end": "2025-03-10T09:45:00-06:00",
        "status": "booked",
        "reason": "Follow-up",
    }
    before = await stream_count(fhir_nats.url)
    again = await adapter.http.post("/fhir/Appointment", content=body(resource), headers=FHIR_JSON)
    assert again.status_code == 201
    assert await stream_count(fhir_nats.url) == before


@pytest.mark.parametrize(
    ("fhir_status", "kind", "status", "reason"),
    [
        ("proposed", "modified", "booked", "Follow-up"),
        ("pending", "modified", "booked", "Follow-up"),
        ("waitlist", "modified", "booked", "Follow-up"),
        ("booked", "modified", "booked", "Follow-up"),
        ("arrived", "checked_in", "checked_in", "Follow-up"),
        ("checked-in", "checked_in", "checked_in", "Follow-up"),
        ("fulfilled", "completed", "completed", "Follow-up"),
        ("cancelled", "cancelled", "cancelled", "cancelled"),
        ("noshow", "no_show", "no_show", None),
        ("entered-in-error", "cancelled", "cancelled", "entered-in-error"),
    ],
)
async def test_update_maps_every_r4_status(
    adapter: Adapter, fhir_nats: NatsServer, fhir_status: str, kind: str, status: str,
    reason: str | None,
) -> None:  # fmt: skip
    fhir_id = f"upd-{fhir_status}"
    resource = appointment(id=fhir_id, status=fhir_status, meta={"versionId": "7"})
    reply = await adapter.http.put(
        f"/fhir/Appointment/{fhir_id}", content=body(resource), headers=FHIR_JSON
    )
    assert reply.status_code == 200, reply.text
    stored = {s.msg_id: s for s in await stored_events(fhir_nats.url)}
    event = stored[f"fhir:fhir:{fhir_id}:7"]
    assert unpartitioned(event.subject) == f"scheduling.appointment.{kind}.v1.SITE01"
    assert event.event["appointment"]["status"] == status
    assert event.event["appointment"]["reason"] == reason


def _request(**changes: Any) -> dict[str, Any]:
    """An Appointment without start and end: R4 allows it when proposed, waitlisted or
    cancelled (invariant app-3)."""
    resource = appointment(
        requestedPeriod=[{"start": "2025-03-17", "end": "2025-03-21T17:00:00-05:00"}],
        minutesDuration=30,
    )
    del resource["start"], resource["end"]
    return resource | changes


@pytest.mark.parametrize(
    ("fhir_status", "kind", "status", "reason"),
    [
        ("proposed", "requested", "proposed", "Follow-up"),
        ("waitlist", "requested", "waitlist", "Follow-up"),
        ("cancelled", "request_cancelled", "cancelled", "cancelled"),
    ],
)
async def test_an_appointment_without_a_time_is_a_request(
    adapter: Adapter, fhir_nats: NatsServer, fhir_status: str, kind: str, status: str,
    reason: str,
) -> None:  # fmt: skip
    fhir_id = f"req-{fhir_status}"
    resource = _request(id=fhir_id, status=fhir_status, meta={"versionId": "2"})
    reply = await adapter.http.put(
        f"/fhir/Appointment/{fhir_id}", content=body(resource), headers=FHIR_JSON
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["location"] == f"Appointment/{fhir_id}/_history/2"
    stored = {s.msg_id: s for s in await stored_events(fhir_nats.url)}
    event = stored[f"fhir:fhir:{fhir_id}:2"]
    assert unpartitioned(event.subject) == f"scheduling.appointment.{kind}.v1.SITE01"
    assert event.event["entity_key"] == "F-9001"
    assert event.event["request"] == {
        "appointment_id": "F-9001",
        "patient_ref": "MRN-7",
        "provider_code": "1234567893",
        "location_code": "CLINIC-A",
        "department_code": "CARDIO",
        "service_code": "99213",
        "status": status,
        "requested_from": "2025-03-17",
        "requested_to": "2025-03-21",
        "duration_minutes": 30,
        "reason": reason,
    }


async def test_a_request_created_then_booked_keeps_its_appointment_id(
    adapter: Adapter, fhir_nats: NatsServer
) -> None:
    """The request and the appointment it becomes are one entity (``entity_key``), newer
    versions of it: what the mapper fences."""
    requested = _request(id="req-then-booked", status="waitlist", requestedPeriod=[])
    reply = await adapter.http.post("/fhir/Appointment", content=body(requested), headers=FHIR_JSON)
    assert reply.status_code == 201, reply.text
    booked = appointment(id="req-then-booked", meta={"versionId": "2"})
    reply = await adapter.http.put(
        "/fhir/Appointment/req-then-booked", content=body(booked), headers=FHIR_JSON
    )
    assert reply.status_code == 200, reply.text
    stored = {s.msg_id: s.event for s in await stored_events(fhir_nats.url)}
    first, second = stored["fhir:fhir:req-then-booked:1"], stored["fhir:fhir:req-then-booked:2"]
    assert first["event_type"] == "scheduling.appointment.requested"
    assert first["request"]["requested_from"] is None
    assert second["event_type"] == "scheduling.appointment.modified"
    assert first["entity_key"] == second["entity_key"] == "F-9001"


async def test_source_and_site_come_from_request_headers(
    adapter: Adapter, fhir_nats: NatsServer
) -> None:
    resource = appointment(id="hdr-1")
    headers = {**FHIR_JSON, "X-Carebus-Source-System": "epic", "X-Carebus-Site": "SITE02"}
    reply = await adapter.http.post("/fhir/Appointment", content=body(resource), headers=headers)
    assert reply.status_code == 201
    stored = {s.msg_id: s for s in await stored_events(fhir_nats.url)}
    event = stored["fhir:epic:hdr-1:1"]
    assert unpartitioned(event.subject).endswith(".SITE02")
    assert event.event["source_system"] == "epic"


def _without(key: str) -> dict[str, Any]:
    resource = appointment()
    del resource[key]
    return resource


REFUSALS = [
    # (case, method, path, body, status, issue code, reason, expression)
    ("not JSON", "POST", "/fhir/Appointment", b"{not json", 400, "structure", "invalid_json", None),
    ("wrong type", "POST", "/fhir/Appointment", body({"resourceType": "Patient", "id": "x"}),
     400, "value", "wrong_resource_type", "resourceType"),
    ("element of the wrong type", "POST", "/fhir/Appointment",
     body(appointment(participant={"actor": "Patient/1"})), 400, "structure",
     "invalid_structure", "Appointment.participant"),
    ("id differs from URL", "PUT", "/fhir/Appointment/other", body(appointment()),
     400, "value", "id_mismatch", "Appointment.id"),
    ("no status", "POST", "/fhir/Appointment", body(_without("status")),
     422, "required", "missing_status", "Appointment.status"),
    ("unknown status", "POST", "/fhir/Appointment", body(appointment(status="done")),
     422, "code-invalid", "unknown_status", "Appointment.status"),
    ("no start", "POST", "/fhir/Appointment", body(_without("start")),
     422, "required", "missing_start", "Appointment.start"),
    # R4 app-3: only proposed, waitlisted and cancelled appointments may lack a time.
    ("pending without a time", "POST", "/fhir/Appointment", body(_request(status="pending")),
     422, "required", "missing_start", "Appointment.start"),
    ("entered-in-error without a time", "POST", "/fhir/Appointment",
     body(_request(status="entered-in-error")), 422, "required", "missing_start",
     "Appointment.start"),
    # R4 app-2: start and end together, or neither.
    ("proposed with an end only", "POST", "/fhir/Appointment",
     body(_request(status="proposed", end="2025-03-10T09:45:00-06:00")), 422, "required",
     "missing_start", "Appointment.start"),
    ("requested period not a date", "POST", "/fhir/Appointment",
     body(_request(status="proposed", requestedPeriod=[{"start": "next week"}])), 422,
     "value", "invalid_datetime", "Appointment.requestedPeriod[0].start"),
    ("requested period backwards", "POST", "/fhir/Appointment",
     body(_request(status="waitlist", requestedPeriod=[
         {"start": "2025-03-21", "end": "2025-03-17"}])), 422, "value",
     "period_ends_before_start", "Appointment.requestedPeriod[0].end"),
    ("start without zone", "POST", "/fhir/Appointment",
     body(appointment(start="2025-03-10T09:15:00")), 422, "value", "datetime_without_zone",
     "Appointment.start"),
    ("no end, no duration", "POST", "/fhir/Appointment", body(_without("end")),
     422, "required", "missing_end", "Appointment.end"),
    ("ends before it starts", "POST", "/fhir/Appointment",
     body(appointment(end="2025-03-10T08:00:00-06:00")), 422, "value",
     "slot_ends_before_start", "Appointment.end"),
    ("no patient", "POST", "/fhir/Appointment",
     body(appointment(participant=[{"actor": {"reference": "Practitioner/1"}}])), 422,
     "required", "missing_patient", "Appointment.participant"),
    ("collection Bundle", "POST", "/fhir",
     body({"resourceType": "Bundle", "type": "collection", "entry": []}), 422,
     "not-supported", "unsupported_bundle_type", "Bundle.type"),
    ("DELETE in a transaction", "POST", "/fhir",
     body({"resourceType": "Bundle", "type": "transaction", "entry": [
         {"resource": appointment(), "request": {"method": "DELETE", "url": "Appointment/a"}}]}),
     422, "not-supported", "unsupported_method", "Bundle.entry[0].request.method"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "code", "reason", "expression"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
async def test_refused_requests_get_an_operation_outcome_and_are_kept(
    adapter: Adapter, fhir_nats: NatsServer, database_url: str, method: str, path: str,
    raw: bytes, status: int, code: str, reason: str, expression: str | None,
) -> None:  # fmt: skip
    before = await stream_count(fhir_nats.url)
    reply = await adapter.http.request(method, path, content=raw, headers=FHIR_JSON)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/fhir+json")
    outcome = reply.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert issue["details"]["coding"][0]["code"] == reason
    assert issue.get("expression", [None])[0] == expression
    assert await stream_count(fhir_nats.url) == before
    [record] = await kept_records(database_url, "fhir", raw)
    assert record["reason"] == reason
    assert record["path"] == expression
    assert record["raw"] == raw


async def test_unsupported_media_type_is_refused_with_415(
    adapter: Adapter, database_url: str
) -> None:
    raw = b"<Appointment xmlns='http://hl7.org/fhir'/>"
    reply = await adapter.http.post(
        "/fhir/Appointment", content=raw, headers={"Content-Type": "application/fhir+xml"}
    )
    assert reply.status_code == 415
    assert reply.json()["issue"][0]["code"] == "not-supported"
    [record] = await kept_records(database_url, "fhir", raw)
    assert record["reason"] == "unsupported_media_type"


def _bundle(kind: str, *resources: dict[str, Any]) -> bytes:
    entries = [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"Appointment/{r['id']}"}}
        for r in resources
    ]  # fmt: skip
    return body({"resourceType": "Bundle", "type": kind, "entry": entries})


async def test_a_transaction_with_one_bad_appointment_stores_nothing(
    adapter: Adapter, fhir_nats: NatsServer, database_url: str
) -> None:
    good = appointment(id="tx-good")
    bad = appointment(id="tx-bad", start=None)
    raw = _bundle("transaction", good, bad)
    before = await stream_count(fhir_nats.url)
    reply = await adapter.http.post("/fhir", content=raw, headers=FHIR_JSON)
    assert reply.status_code == 422
    [issue] = reply.json()["issue"]
    assert issue["expression"] == ["Bundle.entry[1].resource.start"]
    assert await stream_count(fhir_nats.url) == before
    assert [r["reason"] for r in await kept_records(database_url, "fhir", raw)] == ["missing_start"]

    fixed = await adapter.http.post(
        "/fhir", content=_bundle("transaction", good, appointment(id="tx-bad")), headers=FHIR_JSON
    )
    assert fixed.status_code == 200
    assert fixed.json()["type"] == "transaction-response"
    assert await stream_count(fhir_nats.url) == before + 2


async def test_a_batch_stores_its_good_entries_and_answers_per_entry(
    adapter: Adapter, fhir_nats: NatsServer, database_url: str
) -> None:
    raw = _bundle("batch", appointment(id="b-good"), appointment(id="b-bad", status="done"))
    before = await stream_count(fhir_nats.url)
    reply = await adapter.http.post("/fhir", content=raw, headers=FHIR_JSON)
    assert reply.status_code == 200
    good, bad = (e["response"] for e in reply.json()["entry"])
    assert good["status"] == "200 OK"
    assert good["location"].startswith("Appointment/b-good/_history/")
    assert bad["status"] == "422 Unprocessable Entity"
    assert bad["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.status"]
    assert await stream_count(fhir_nats.url) == before + 1
    [record] = await kept_records(database_url, "fhir", raw)
    assert record["reason"] == "unknown_status"


async def test_fhir_answers_503_while_jetstream_is_down_and_keeps_nothing(
    private_nats: NatsServer, database_url: str
) -> None:
    await provision_all(private_nats.url)
    settings = settings_for(private_nats.url, database_url, publish_timeout_s=1.0)
    raw = body(appointment(id="outage-1"))
    async with running_adapter(settings) as adapter:
        private_nats.stop()
        reply = await adapter.http.post("/fhir/Appointment", content=raw, headers=FHIR_JSON)
        assert reply.status_code == 503
        assert reply.json()["issue"][0]["code"] == "transient"
        assert reply.headers["retry-after"] == "5"
        private_nats.start()
        for _ in range(100):  # the adapter reconnects on its own (bounded wait)
            reply = await adapter.http.post("/fhir/Appointment", content=raw, headers=FHIR_JSON)
            if reply.status_code != 503:
                break
        assert reply.status_code == 201
    assert [s.msg_id for s in await stored_events(private_nats.url)] == ["fhir:fhir:outage-1:1"]
    assert await kept_records(database_url, "fhir", raw) == []


# -- the official R4 examples ------------------------------------------------------------
async def test_every_official_appointment_example_has_its_committed_outcome(
    adapter: Adapter, fhir_nats: NatsServer, database_url: str
) -> None:
    assert len(EXAMPLES) == 3
    counts: Counter[str] = Counter()
    for example in EXAMPLES:
        raw = example.file.read_bytes()
        reply = await adapter.http.post("/fhir/Appointment", content=raw, headers=FHIR_JSON)
        if not example.accepted:
            assert reply.status_code == example.status, (example.path, reply.text)
            (issue,) = reply.json()["issue"]
            assert issue["details"]["coding"][0]["code"] == example.reason
            assert issue["expression"] == [example.expression]
            [record] = await kept_records(database_url, "fhir", raw)
            assert record["reason"] == example.reason
            counts["refused"] += 1
            continue
        assert reply.status_code == 201, (example.path, reply.text)
        fhir_id, version = reply.headers["location"].split("/")[1::2]
        stored = {s.msg_id: s.event for s in await stored_events(fhir_nats.url)}
        event = stored[f"fhir:fhir:{fhir_id}:{version}"]
        assert (event["event_type"],) == example.event_types, example.path
        assert await kept_records(database_url, "fhir", raw) == []
        counts["accepted"] += 1
    print(f"\n[official R4 examples] scheduling: {dict(counts)}")


async def test_the_official_request_example_is_a_request(
    adapter: Adapter, fhir_nats: NatsServer
) -> None:
    """Appointment-examplereq.json: proposed, no start (valid under R4 app-3)."""
    [example] = [e for e in EXAMPLES if e.path.endswith("Appointment-examplereq.json")]
    reply = await adapter.http.put(
        "/fhir/Appointment/examplereq", content=example.file.read_bytes(), headers=FHIR_JSON
    )
    assert reply.status_code == 200, reply.text
    version = reply.headers["location"].rsplit("/", 1)[1]
    stored = {s.msg_id: s for s in await stored_events(fhir_nats.url)}
    event = stored[f"fhir:fhir:examplereq:{version}"]
    assert unpartitioned(event.subject) == "scheduling.appointment.requested.v1.SITE01"
    assert event.event["entity_key"] == "123"  # its identifier, as for any appointment
    assert event.event["request"] == {
        "appointment_id": "123",
        "patient_ref": "example",
        "provider_code": None,  # the ATND participant names no actor
        "location_code": "1",
        "department_code": "394814009",
        "service_code": None,
        "status": "proposed",
        "requested_from": "2016-06-02",
        "requested_to": "2016-06-09",
        "duration_minutes": 15,
        "reason": "Clinical Review",
    }


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_the_official_examples_in_one_bundle(
    adapter: Adapter, fhir_nats: NatsServer, kind: str
) -> None:
    """The package has no transaction or batch Bundle carrying an Appointment: the examples
    are put in one, unchanged, each as a create."""
    accepted = [e for e in EXAMPLES if e.accepted]
    reply = await adapter.http.post("/fhir", content=bundle_of(kind, EXAMPLES), headers=FHIR_JSON)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["type"] == f"{kind}-response"
    stored = {s.msg_id: s.event for s in await stored_events(fhir_nats.url)}
    for example, entry in zip(EXAMPLES, answer["entry"], strict=True):
        response = entry["response"]
        assert response["status"] == "200 OK", (example.path, response)
        fhir_id, version = response["location"].split("/")[1::2]
        assert (stored[f"fhir:fhir:{fhir_id}:{version}"]["event_type"],) == example.event_types
    assert len(answer["entry"]) == len(accepted)
