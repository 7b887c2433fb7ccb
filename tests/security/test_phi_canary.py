"""PHI canary (issue #17): patient fields carrying distinctive values go through the real
services (processes on a NATS and a database of the test's own, kept inputs sealed with a
data key, spans exported to a collector) over every intake, thousands of valid and malformed
inputs in all: HL7 SIU and DFT over MLLP, FHIR Appointments (single and in Bundles), FHIR
billing resources (single and in Bundles), the X12 835 upload and inbox, the scheduling CSV
import (the command), and master-data changes (the API and its bulk import). The malformed
ones break a field with a canary, so the parsers' offending-value paths run; the valid ones
find the master data they name (imported first) and are validated, mapped and posted to the
ledger (the ERP poster's connector here).

Then none of those values may be found where it must not be: any service's log (stdout and
stderr), any /metrics, any exported span (name, attributes, events, status), any stream
message's subject or headers (trace context included), any advisory, any exception event's
``message``, any answer to a bad input (HTTP problem bodies, Bundle outcomes, MLLP ACKs),
the import command's output and its reject file's reasons, the inbox's reports, or any
column of the database but those that must hold them (listed, each with why). The kept
inputs and offending values hold them sealed (docs/decisions/028)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from carebus_contracts.subjects import STREAM_EXCEPTIONS
from carebus_scenario.endpoints import Endpoints
from carebus_scenario.observe import wait_quiet
from carebus_scenario.stack import ServiceStack
from carebus_shared.cli.services import discover
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import STREAM_ADVISORIES
from tests.support import auth
from tests.support import phi_canary as canary
from tests.support.data_key import KEY_LINE
from tests.support.fhir_examples import fhir_headers
from tests.support.otlp_collector import Collector, running_collector
from tests.support.scheduling import MllpClient
from tests.support.stacks import running_stack

pytestmark = pytest.mark.slow

SIU_COUNT = 750
DFT_COUNT = 500
APPOINTMENT_COUNT = 240
BILLING_COUNT = 240
REMITTANCE_COUNT = 60
INBOX_COUNT = 18
CSV_COUNT = 800
MASTERDATA_COUNT = 90
PREVIEW_COUNT = 45
REDRIVE_COUNT = 60
MLLP_CONNECTIONS = 4
HTTP_IN_FLIGHT = 8
VIEW_RECORDS = "carebus_validator_view_records "
# Columns that may hold canary values in the clear, and why. Master data is entered by a
# person (the import here names providers after the canaries); an 835 claim is keyed by its
# patient control number (CLP01, the canary account; the DFT's visit number), which stages
# must look up by and its journal names.
PROVIDER_NAME = "carebus_masterdata_validator.provider.name"
MUST_HOLD = {
    PROVIDER_NAME: "master data (the providers imported)",
    "carebus_masterdata_validator.audit.before": "the master-data change history",
    "carebus_masterdata_validator.audit.after": "the master-data change history",
    "carebus_masterdata_validator.parked_event.entity": "the entity key (a claim's CLP01)",
    "carebus_masterdata_validator.parked_event.missing_keys": "the codes it waits for, looked "
    "up by each master-data change (a code sent where a service code goes)",
    "carebus_ops.step.entity_key": "the tracker's entity key (a claim's CLP01)",
    "carebus_ops.link.entity_key": "the tracker's entity key (a claim's CLP01)",
    "carebus_ops.link.other_key": "the tracker's entity key (a claim's CLP01)",
    "carebus_masterdata_validator.claim_index.claim_id": "the claim index's key (CLP01), by "
    "which each remittance event finds its claim's site",
    "carebus_masterdata_validator.claim_charge.claim_id": "the claim index's key (CLP01)",
    "carebus_mapper.entity_version.entity_key": "the mapper's fencing key (a claim's CLP01)",
    canary.JOURNAL_DESCRIPTION: "a claim's journal names its claim (CLP01); "
    "canary.journal_leaks checks that it holds nothing else",
}


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running_collector() as found:
        yield found


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path, collector: Collector
) -> AsyncIterator[ServiceStack]:
    env = {
        "CAREBUS_DATA_KEY": KEY_LINE,
        "CAREBUS_LOG_LEVEL": "INFO",  # what a service says at INFO must be clean too
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SDK_DISABLED": "false",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    extra = {service.name: env for service in discover()}
    async with running_stack(database_url, private_nats.url, tmp_path, extra_env=extra) as s:
        yield s


# -- senders -----------------------------------------------------------------------------------
async def _mllp(port: int, messages: list[bytes]) -> list[str]:
    """Over MLLP_CONNECTIONS connections at once, each one message then its ACK."""

    async def one_connection(share: list[bytes]) -> list[str]:
        client = await MllpClient.connect(port)
        try:
            return [(await client.send(m)).decode(errors="replace") for m in share]
        finally:
            await client.close()

    shares = [messages[i::MLLP_CONNECTIONS] for i in range(MLLP_CONNECTIONS)]
    answers = await asyncio.gather(*(one_connection(share) for share in shares))
    return [ack for share in answers for ack in share]


async def _http(
    base: str, requests: list[tuple[str, str, dict[str, str], bytes]]
) -> list[tuple[int, str]]:
    """(status, body) of every request, HTTP_IN_FLIGHT at a time."""
    headers = fhir_headers(canary.SITE) | auth.HEADERS
    gate = asyncio.Semaphore(HTTP_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:

        async def one(method: str, path: str, extra: dict[str, str], body: bytes) -> Any:
            async with gate:
                reply = await client.request(method, path, content=body, headers=extra)
                return reply.status_code, reply.text

        return list(await asyncio.gather(*(one(*r) for r in requests)))


def _fhir(requests: list[tuple[str, str, bytes]]) -> list[tuple[str, str, dict[str, str], bytes]]:
    return [(method, path, {}, body) for method, path, body in requests]


def _csv_import(stack: ServiceStack, folder: Path) -> tuple[list[str], int]:
    """The scheduling CSV import run as a person runs it (the command); returns what it
    printed and the reasons of its reject files, and the rows sent."""
    rows = canary.csv_rows(CSV_COUNT)
    good = folder / "appointments.csv"
    good.write_text(canary.CSV_HEADER + "\n" + "\n".join(rows) + "\n")
    bad_header = folder / "other.csv"
    bad_header.write_text(f"{canary.NAME_FAMILY},{canary.MRN}\n{canary.PHONE},x\n")
    command = Path(sys.executable).with_name("carebus-scheduling")
    env = {**os.environ, **stack.env["scheduling-adapter"]}
    said = []
    for path in (good, bad_header):
        done = subprocess.run(
            [str(command), "import", str(path), "--site", canary.SITE],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        said.append(f"exit {done.returncode}\n{done.stdout.decode()}\n{done.stderr.decode()}")
    assert said[0].startswith("exit 1"), said[0]  # some rows rejected, the rest published
    assert said[1].startswith("exit 2"), said[1]  # the header lacks required columns
    rejects = list(csv.DictReader(io.StringIO(Path(f"{good}.rejects.csv").read_text())))
    assert len(rejects) >= CSV_COUNT // 2
    # The rejected rows are the person's own file; what the import adds must name no value.
    said += [f"{r['carebus_column']} {r['carebus_reason']} {r['carebus_message']}" for r in rejects]
    return said, len(rows) + 1


async def _masterdata(base: str) -> tuple[list[tuple[int, str]], int]:
    requests: list[tuple[str, str, dict[str, str], bytes]] = []
    sent = 0
    for n in range(12):
        make = canary.provider_csv if n % 3 else canary.provider_json
        body, rows = make(n * 25, 25, malformed=n % 2 == 1)
        kind = "text/csv" if n % 3 else "application/json"
        requests.append(("POST", "/v1/providers/import", {"Content-Type": kind}, body))
        sent += rows
    requests += canary.masterdata_requests(MASTERDATA_COUNT)
    answers = await _http(base, requests)
    valid = [a for n, a in enumerate(answers[:12]) if n % 2 == 0]
    assert all(status == 200 for status, _ in valid), valid[:1]
    return answers, sent + MASTERDATA_COUNT


async def _redrives(endpoints: Endpoints) -> tuple[list[tuple[int, str]], int]:
    """Kept inputs re-driven with corrected bodies that are malformed again (a re-drive is
    an intake too): each through the adapter that kept it, in the form it came in."""
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, stage, source FROM carebus_exceptions.exception_record "
            "WHERE status = 'open' AND subject IS NULL AND raw IS NOT NULL "
            "AND stage IN ('scheduling_adapter', 'billing_adapter') ORDER BY id"
        )
    finally:
        await conn.close()
    siu, dft = canary.siu_kinds()[1:], canary.dft_kinds()[1:]
    appointment = canary.appointment_kinds()[1:]
    bodies = {
        ("scheduling_adapter", "hl7"): lambda n: siu[n % len(siu)](f"RD-{n}"),
        ("billing_adapter", "hl7"): lambda n: dft[n % len(dft)](f"RD-{n}"),
        ("scheduling_adapter", "fhir"): lambda n: json.dumps(
            appointment[n % len(appointment)](f"rd-{n}")
        ).encode(),
        ("billing_adapter", "x12"): lambda n: canary.remittances(9)[1 + n % 8],
    }
    chosen = [r for r in rows if (r["stage"], r["source"]) in bodies]
    base = {
        "scheduling_adapter": endpoints.scheduling_http,
        "billing_adapter": endpoints.billing_http,
    }
    answers: list[tuple[int, str]] = []
    for stage in base:
        picked = [r for r in chosen if r["stage"] == stage][: REDRIVE_COUNT // 2]
        requests = [
            ("POST", f"/v1/exceptions/{r['id']}/redrive", {}, bodies[(stage, r["source"])](n))
            for n, r in enumerate(picked)
        ]
        answers += await _http(base[stage], requests)
    return answers, len(answers)


async def _pipeline_masterdata(base: str) -> None:
    """The master data the valid inputs reference, imported and in the validator's view
    before any input is sent (so they flow on to the mapper and the ERP poster)."""
    imports = canary.pipeline_masterdata()
    wanted = sum(len(records) for _, records in imports)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=auth.HEADERS) as client:
        for collection, records in imports:
            reply = await client.post(f"/v1/{collection}/import", json=records)
            assert reply.status_code == 200, (collection, reply.text[:300])
        for _ in range(300):  # bounded: 60 s
            metrics = (await client.get("/metrics")).text
            held = [line for line in metrics.splitlines() if line.startswith(VIEW_RECORDS)]
            if held and float(held[0].split()[1]) >= wanted:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the validator's view did not reach {wanted} records")


def _metrics(stack: ServiceStack) -> dict[str, str]:
    found = {}
    for name in stack.services:
        request = urllib.request.Request(f"{stack.http(name)}/metrics", headers=auth.HEADERS)
        with urllib.request.urlopen(request, timeout=10) as reply:  # metrics:read
            found[name] = reply.read().decode()
    return found


def _problems(answers: list[tuple[int, str]]) -> list[str]:
    """Answers to bad inputs: problem bodies, and Bundle responses (their entries' outcomes
    answer a bad entry; an accepted entry's answer is its location)."""
    return [f"{status} {text}" for status, text in answers if status >= 300 or '"outcome"' in text]


# -- the test ----------------------------------------------------------------------------------
async def test_no_canary_value_leaves_the_stores_that_must_hold_it(
    stack: ServiceStack, collector: Collector, tmp_path: Path
) -> None:
    started = time.monotonic()
    endpoints = stack.endpoints
    sent = 0
    sched_port, billing_port = endpoints.scheduling_mllp[1], endpoints.billing_mllp[1]
    await _pipeline_masterdata(endpoints.validator_http)
    siu = canary.cycle(canary.siu_kinds(), "CANARY-S", SIU_COUNT)
    dft = canary.cycle(canary.dft_kinds(), "CANARY-D", DFT_COUNT)
    acks_and_answers = await asyncio.gather(
        _mllp(sched_port, siu),
        _mllp(billing_port, dft),
        _http(endpoints.scheduling_http, _fhir(canary.appointment_requests(APPOINTMENT_COUNT))),
        _http(endpoints.billing_http, _fhir(canary.billing_requests(BILLING_COUNT))),
    )
    acks: list[str] = [*acks_and_answers[0], *acks_and_answers[1]]
    answers: list[tuple[int, str]] = [*acks_and_answers[2], *acks_and_answers[3]]
    sent += SIU_COUNT + DFT_COUNT + APPOINTMENT_COUNT + BILLING_COUNT

    bundles, entries = canary.appointment_bundles(8, 25)
    answers += await _http(endpoints.scheduling_http, [("POST", "/fhir", {}, b) for b in bundles])
    sent += entries
    bundles, entries = canary.billing_bundles(8, 20)
    answers += await _http(endpoints.billing_http, [("POST", "/fhir", {}, b) for b in bundles])
    sent += entries
    remittances = canary.remittances(REMITTANCE_COUNT)
    upload = [("POST", "/v1/remittances", {}, body) for body in remittances]
    answers += await _http(endpoints.billing_http, upload)
    sent += len(remittances)
    assert endpoints.inbox_dir is not None
    for n, body in enumerate(canary.remittances(INBOX_COUNT)):
        (endpoints.inbox_dir / f".canary-{n}.835").write_bytes(body)
        (endpoints.inbox_dir / f".canary-{n}.835").rename(endpoints.inbox_dir / f"canary-{n}.835")
    sent += INBOX_COUNT
    masterdata, rows = await _masterdata(endpoints.validator_http)
    answers += masterdata
    sent += rows
    answers += await _http(endpoints.mapper_http, canary.preview_requests(PREVIEW_COUNT))
    sent += PREVIEW_COUNT
    redriven, count = await _redrives(endpoints)
    assert count >= REDRIVE_COUNT // 2
    answers += redriven
    sent += count
    printed, rows = await asyncio.to_thread(_csv_import, stack, tmp_path)
    sent += rows
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)
    assert sent >= 3000
    # The valid inputs were validated, mapped and posted to the ledger: at least every valid
    # SIU, DFT, CSV row and FHIR Appointment (some malformed ones are valid enough to post),
    # and the 835s' claim.
    posted = await canary.journals_by_intake(endpoints.database_url)
    floor = {"siu": SIU_COUNT // len(canary.siu_kinds()), "dft": DFT_COUNT // 10,
             "csv": CSV_COUNT // 10, "fhir": APPOINTMENT_COUNT // 10, "835": 1}  # fmt: skip
    assert all(posted[intake] >= least for intake, least in floor.items()), (posted, floor)

    refused = [a for a in acks if "|AE|" in a or "|AR|" in a]
    assert len(refused) >= (SIU_COUNT + DFT_COUNT) // 2  # MSA AE/AR, MSA-3 and ERR included
    problems = _problems(answers)
    assert len(problems) >= (APPOINTMENT_COUNT + BILLING_COUNT) // 2  # every HTTP intake's
    assert not [a for a in problems if a.startswith(("401", "403", "429", "5"))]  # for content
    found = [leak for n, ack in enumerate(acks) for leak in canary.leaks(f"MLLP ACK {n}", ack)]
    found += [leak for n, a in enumerate(problems) for leak in canary.leaks(f"answer {n}", a)]
    found += [leak for n, p in enumerate(printed) for leak in canary.leaks(f"import out {n}", p)]
    for name, text in _metrics(stack).items():
        found += canary.leaks(f"{name} /metrics", text)
    for folder in ("done", "rejected"):  # moved inbox files: sealed, their reports value-free
        for path in (endpoints.inbox_dir / folder).glob("*.reason"):
            found += canary.leaks(f"inbox report {path.name}", path.read_text(errors="replace"))
    found += await canary.stream_leaks(endpoints.nats_url)
    in_db, held = await canary.database_leaks(endpoints.database_url, MUST_HOLD)
    found += in_db
    found += await canary.journal_leaks(endpoints.database_url)
    assert PROVIDER_NAME in held  # the scan finds what is there
    assert canary.JOURNAL_DESCRIPTION in held  # the claim's journal reached the ledger
    assert await canary.exception_records(endpoints.database_url) >= sent // 3  # refusals ran
    exceptions = await canary.exception_count(endpoints.nats_url, STREAM_EXCEPTIONS)
    # The quarantine and the mapper ran: a ChargeItem whose code is an MRN is parked, and a
    # valid one has no location to post under (the FHIR ChargeItem carries none).
    assert exceptions >= BILLING_COUNT // 8
    await asyncio.to_thread(stack.stop)  # flushes the spans each service still holds
    in_logs, files = canary.log_leaks(stack.logs)
    assert files == len(stack.services)  # every service wrote one
    found += in_logs
    spans = collector.spans()
    assert len(spans) >= 100  # the services did export
    found += canary.span_leaks(spans)
    assert found == [], "\n".join(sorted(set(found))[:60])
    journals = sum(posted.values())
    print(f"{sent} inputs, {journals} journals, {len(spans)} spans, "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip


# -- the checks can fail -----------------------------------------------------------------------
async def test_the_checks_find_a_canary_planted_where_they_look(
    tmp_path: Path, database_url: str, private_nats: NatsServer
) -> None:
    """Each collector above, given one canary where it looks, reports it (and nothing when
    it is not there): a log line, a span attribute, a stream header, an advisory, an
    exception event's message, a database column (text, jsonb, bytea), a journal description
    naming more than its claim."""
    (tmp_path / "svc.log").write_text('{"level": "info", "message": "all well"}\n')
    assert canary.log_leaks(tmp_path) == ([], 1)
    with (tmp_path / "svc.log").open("a") as log:
        log.write(f'{{"level": "error", "message": "bad amount {canary.MRN}"}}\n')
    assert canary.log_leaks(tmp_path) == ([f"{canary.MRN} in log svc.log"], 1)

    def attribute(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    span = Span(name="intake", attributes=[attribute("carebus.stage", "intake")])
    assert canary.span_leaks([("svc", span)]) == []
    span.events.append(Span.Event(name="e", attributes=[attribute("x", canary.NAME_FAMILY)]))
    assert canary.span_leaks([("svc", span)]) == [f"{canary.NAME_FAMILY} in span 'intake' of svc"]

    nc = await nats.connect(private_nats.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM_EXCEPTIONS, subjects=["exceptions.>"])
        await js.add_stream(name=STREAM_ADVISORIES, subjects=["advisory.>"])
        await js.publish("exceptions.x", json.dumps({"message": "field x: not a date"}).encode())
        assert await canary.stream_leaks(private_nats.url) == []
        await js.publish("exceptions.x", json.dumps({"message": f"{canary.BAD_DOB}"}).encode())
        await js.publish("exceptions.y", b"{}", headers={"traceparent": canary.PHONE})
        await js.publish("advisory.z", f'{{"reason": "{canary.ACCOUNT}"}}'.encode())
    finally:
        await nc.close()
    assert set(await canary.stream_leaks(private_nats.url)) == {
        f"{canary.ACCOUNT} in stream {STREAM_ADVISORIES} #1",
        f"{canary.PHONE} in stream {STREAM_EXCEPTIONS} #3 headers",
        f"{canary.BAD_DOB} in stream {STREAM_EXCEPTIONS} #2 message",
    }

    schema = f"canaryselftest_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.t (a text, b jsonb, c bytea, d text)")
        await conn.execute(
            f"INSERT INTO {schema}.t VALUES ($1, $2::jsonb, $3, 'clean')",
            f"x {canary.STREET}", json.dumps({"n": canary.NAME_GIVEN}), canary.MRN.encode(),
        )  # fmt: skip
        found, held = await canary.database_leaks(
            database_url, {f"{schema}.t.a": "allowed here"}, schema
        )
        assert sorted(found) == [f"1 row(s) of {schema}.t.{c}" for c in "bc"]
        assert held == {f"{schema}.t.a"}
        await conn.execute(f"CREATE TABLE {schema}.j (description text)")
        claim = f"Claim {canary.ACCOUNT} adjudicated: paid"
        await conn.execute(f"INSERT INTO {schema}.j VALUES ($1), ('Charge CH-1 99213')", claim)
        assert await canary.journal_leaks(database_url, f"{schema}.j") == []
        await conn.execute(f"INSERT INTO {schema}.j VALUES ($1)", f"{claim} {canary.NAME_GIVEN}")
        assert await canary.journal_leaks(database_url, f"{schema}.j") == [
            f"{canary.NAME_GIVEN} in journal description"
        ]
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
