"""End to end: W3C trace context from the intake to the ERP. An appointment sent over MLLP
starts a trace, a FHIR request continues the caller's (a malformed ``traceparent`` starts a
new one), and each trace is in the NATS headers of the event at every stream it passes, in
the ERP sandbox's request log and in the services' log lines. The poster uses the "http"
connector against the sandbox; five services and the sandbox run as processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from carebus_contracts.subjects import (
    STREAM_ERP,
    STREAM_MASTERDATA,
    STREAM_SCHEDULING,
    STREAM_VALIDATED,
)
from carebus_scenario.observe import quarantine_reasons, wait_quiet
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.tracing.context import TraceContext, parse
from tests.support import auth
from tests.support.erp_poster import Sandbox
from tests.support.fhir_examples import EXAMPLES_DIR, fhir_headers
from tests.support.samples import SAMPLES
from tests.support.scheduling import MllpClient, read_ack, siu_message
from tests.support.stacks import own_database, running_stack

pytestmark = pytest.mark.slow

FHIR_HEADERS = fhir_headers("SITE01")
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
MASTER_DATA_TRACE = "0af7651916cd43dd8448eb211c80319c"
# What the FHIR request names (Location/1, specialty 394814009) and what the SIU names
# (location CLINIC-A, provider NPI 1234567893, service 99213).
MASTER_DATA: list[tuple[str, list[dict[str, Any]]]] = [
    ("cost-centres", [{"cost_centre_id": "CC-GP", "name": "General practice"}]),
    ("locations", [
        {"location_id": "1", "name": "South Wing", "place_of_service": "11",
         "time_zone": "America/Chicago", "cost_centre_id": "CC-GP"},
        {"location_id": "CLINIC-A", "name": "Clinic A", "place_of_service": "11",
         "time_zone": "America/Chicago", "cost_centre_id": "CC-GP"},
    ]),
    ("departments", [{"department_id": "394814009", "name": "General practice",
                      "cost_centre_id": "CC-GP", "location_id": "1"}]),
    ("providers", [{"provider_id": "P-1", "npi": "1234567893", "name": "Anna Smith",
                    "department_id": "394814009"}]),
    ("services", [{"service_code": "99213", "code_system": "CPT",
                   "description": "Office visit"}]),
]  # fmt: skip


@pytest.fixture
async def traced_stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[tuple[ServiceStack, Sandbox]]:
    async with own_database(database_url, "carebus_erp_sandbox") as erp_db:
        sandbox = Sandbox(erp_db, tmp_path / "sandbox.log", confirm_delay_s=0)
        await sandbox.start()
        poster = {
            "CAREBUS_ERP_POSTER_CONNECTOR": "http",
            "CAREBUS_ERP_POSTER_ERP_BASE_URL": sandbox.url,
            "CAREBUS_ERP_POSTER_CONFIRM_POLL_S": "0.3",
        }
        try:
            async with running_stack(
                database_url, private_nats.url, tmp_path, extra_env={"erp-poster": poster}
            ) as services:
                yield services, sandbox
        finally:
            sandbox.stop()


async def _headers(nats_url: str, stream: str) -> list[dict[str, str]]:
    """Every stored message's headers on ``stream``."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(stream)).state
        return [
            dict((await js.get_msg(stream, seq)).headers or {})
            for seq in (range(state.first_seq, state.last_seq + 1) if state.messages else ())
        ]
    finally:
        await nc.close()


async def _headers_by_stream(nats_url: str) -> dict[str, list[dict[str, str]]]:
    streams = (STREAM_MASTERDATA, STREAM_SCHEDULING, STREAM_VALIDATED, STREAM_ERP)
    return {stream: await _headers(nats_url, stream) for stream in streams}


def _trace_of(headers: dict[str, str]) -> str:
    ctx = parse(headers.get("traceparent"))
    assert ctx is not None, f"no valid traceparent in {sorted(headers)}"
    return ctx.trace_id


def _streams_of(found: dict[str, list[dict[str, str]]], trace_id: str) -> dict[str, set[str]]:
    """Stream → the event types published in ``trace_id``."""
    out: dict[str, set[str]] = {}
    for stream, messages in found.items():
        for headers in messages:
            if _trace_of(headers) == trace_id:
                out.setdefault(stream, set()).add(headers.get("Carebus-Event-Type", "?"))
    return out


async def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:  # bounded by the deadline
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def test_traces_run_from_the_intake_through_every_stream_to_the_erp(
    traced_stack: tuple[ServiceStack, Sandbox],
) -> None:
    stack, sandbox = traced_stack
    endpoints = stack.endpoints
    async with httpx.AsyncClient(
        base_url=endpoints.validator_http, timeout=30, headers=auth.HEADERS
    ) as validator:
        for collection, records in MASTER_DATA:
            reply = await validator.post(
                f"/v1/{collection}/import",
                json=records,
                headers={
                    "traceparent": f"00-{MASTER_DATA_TRACE}-b7ad6b7169203331-01",
                },
            )
            assert reply.status_code == 200, reply.text
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    # A FHIR booking with the caller's trace, one with a malformed header, one over MLLP.
    raw = json.loads((SAMPLES / EXAMPLES_DIR / "Appointment-examplereq.json").read_bytes())
    booked = raw | {"status": "booked", "start": "2016-06-03T09:00:00-05:00",
                    "end": "2016-06-03T09:15:00-05:00"}  # fmt: skip
    async with httpx.AsyncClient(
        base_url=endpoints.scheduling_http, timeout=30, headers=auth.HEADERS
    ) as scheduling:
        reply = await scheduling.put(
            "/fhir/Appointment/examplereq",
            content=json.dumps(booked),
            headers=FHIR_HEADERS | {"traceparent": CALLER, "tracestate": "carebus=test"},
        )
        assert reply.status_code == 200, reply.text
        other = booked | {
            "id": "examplereq2",
            "identifier": [{"system": "http://example.org/sampleappointment-identifier",
                            "value": "124"}],
        }  # fmt: skip
        reply = await scheduling.put(
            "/fhir/Appointment/examplereq2",
            content=json.dumps(other),
            headers=FHIR_HEADERS | {"traceparent": "00-not-a-trace-01"},
        )
        assert reply.status_code == 200, reply.text  # a malformed header is never an error
    client = await MllpClient.connect(endpoints.scheduling_mllp[1])
    try:
        assert read_ack(await client.send(siu_message("TRACE-1"))).code == "AA"
        # Unparseable: refused, logged and kept, all in the message's trace.
        assert read_ack(await client.send(b"MSH|not hl7")).code == "AR"
    finally:
        await client.close()

    # Each booking's journal is posted and confirmed: requested, posted, confirmed.
    async def all_confirmed() -> dict[str, list[dict[str, str]]] | None:
        found = await _headers_by_stream(endpoints.nats_url)
        kinds = [h.get("Carebus-Event-Type") for h in found[STREAM_ERP]]
        return found if kinds.count("erp.journal.confirmed") >= 3 else None

    try:
        found = await _until(all_confirmed, 90, "three confirmed journals")
    except AssertionError:
        seen = await _headers_by_stream(endpoints.nats_url)
        kinds = {k: [h.get("Carebus-Event-Type") for h in v] for k, v in seen.items()}
        parked = await quarantine_reasons(endpoints.validator_http)
        raise AssertionError(f"not three confirmed journals: {kinds}, parked {parked}") from None

    # Every stored event carries a valid traceparent.
    for messages in found.values():
        for headers in messages:
            _trace_of(headers)
    assert {_trace_of(h) for h in found[STREAM_MASTERDATA]} == {MASTER_DATA_TRACE}

    appointments = [_trace_of(h) for h in found[STREAM_SCHEDULING]]
    assert len(appointments) == len(set(appointments)) == 3  # three inputs, three traces
    assert CALLER_TRACE in appointments
    requests = await sandbox.requests()
    erp_traces = {
        parse(r["traceparent"]).trace_id  # type: ignore[union-attr]
        for r in requests
        if r["path"] == "/api/v1/journals" and r["traceparent"]
    }
    for trace_id in appointments:
        # The same trace at every stream the appointment passed, and at the ERP.
        passed = _streams_of(found, trace_id)
        assert set(passed) == {STREAM_SCHEDULING, STREAM_VALIDATED, STREAM_ERP}, trace_id
        [scheduled], [validated] = passed[STREAM_SCHEDULING], passed[STREAM_VALIDATED]
        assert validated == scheduled.replace("scheduling.", "validated.")
        assert passed[STREAM_ERP] == {
            "erp.journal.requested", "erp.journal.posted", "erp.journal.confirmed",
        }  # fmt: skip
        assert trace_id in erp_traces
    # The caller's tracestate travels with its trace.
    [caller_event] = [h for h in found[STREAM_SCHEDULING] if _trace_of(h) == CALLER_TRACE]
    assert caller_event.get("tracestate") == "carebus=test"

    # Each stage's span is a new one under the previous stage's.
    spans = [
        parse(h["traceparent"])
        for stream in (STREAM_SCHEDULING, STREAM_VALIDATED, STREAM_ERP)
        for h in found[stream]
        if _trace_of(h) == CALLER_TRACE
    ]
    assert len({s.span_id for s in spans if isinstance(s, TraceContext)}) >= 3

    # The refused message's log line names the trace the message started (its own).
    logged = [
        json.loads(line)
        for line in (stack.logs / "scheduling-adapter.log").read_text().splitlines()
        if line.startswith("{") and "unparseable HL7" in line
    ]
    assert len(logged) == 1
    refused = parse(f"00-{logged[0]['trace_id']}-{logged[0]['span_id']}-01")
    assert refused is not None
    assert refused.trace_id not in appointments
