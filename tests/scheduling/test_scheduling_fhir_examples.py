"""The official FHIR R4 Appointment examples (``hl7.fhir.r4.examples`` 4.0.1) through the
running adapter (real NATS and PostgreSQL): each file as a create, then all of them in a
transaction and in a batch Bundle; every outcome is the committed one
(``tests/fhir/official_example_expectations.tsv``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from carebus_shared.devstack.nats_server import NatsServer
from tests.support.fhir_examples import bundle_of, expectations
from tests.support.scheduling import (
    Adapter,
    kept_records,
    provision_all,
    running_adapter,
    settings_for,
    stored_events,
)

FHIR_JSON = {"Content-Type": "application/fhir+json"}
EXAMPLES = expectations("scheduling")


@pytest.fixture(scope="module")
def examples_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scheduling-examples-nats"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
async def adapter(examples_nats: NatsServer, database_url: str) -> AsyncIterator[Adapter]:
    await provision_all(examples_nats.url)
    async with running_adapter(settings_for(examples_nats.url, database_url)) as running:
        yield running


async def test_every_official_appointment_example_has_its_committed_outcome(
    adapter: Adapter, examples_nats: NatsServer, database_url: str
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
        stored = {s.msg_id: s.event for s in await stored_events(examples_nats.url)}
        event = stored[f"fhir:fhir:{fhir_id}:{version}"]
        assert (event["event_type"],) == example.event_types, example.path
        assert await kept_records(database_url, "fhir", raw) == []
        counts["accepted"] += 1
    print(f"\n[official R4 examples] scheduling: {dict(counts)}")


async def test_the_official_request_example_is_a_request(
    adapter: Adapter, examples_nats: NatsServer
) -> None:
    """Appointment-examplereq.json: proposed, no start (valid under R4 app-3)."""
    [example] = [e for e in EXAMPLES if e.path.endswith("Appointment-examplereq.json")]
    reply = await adapter.http.put(
        "/fhir/Appointment/examplereq", content=example.file.read_bytes(), headers=FHIR_JSON
    )
    assert reply.status_code == 200, reply.text
    version = reply.headers["location"].rsplit("/", 1)[1]
    stored = {s.msg_id: s for s in await stored_events(examples_nats.url)}
    event = stored[f"fhir:fhir:examplereq:{version}"]
    assert event.subject == "scheduling.appointment.requested.v1.SITE01"
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
    adapter: Adapter, examples_nats: NatsServer, kind: str
) -> None:
    """The package has no transaction or batch Bundle carrying an Appointment: the examples
    are put in one, unchanged, each as a create."""
    accepted = [e for e in EXAMPLES if e.accepted]
    reply = await adapter.http.post("/fhir", content=bundle_of(kind, EXAMPLES), headers=FHIR_JSON)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["type"] == f"{kind}-response"
    stored = {s.msg_id: s.event for s in await stored_events(examples_nats.url)}
    for example, entry in zip(EXAMPLES, answer["entry"], strict=True):
        response = entry["response"]
        assert response["status"] == "200 OK", (example.path, response)
        fhir_id, version = response["location"].split("/")[1::2]
        assert (stored[f"fhir:fhir:{fhir_id}:{version}"]["event_type"],) == example.event_types
    assert len(answer["entry"]) == len(accepted)
