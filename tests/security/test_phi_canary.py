"""PHI canary: patient fields carrying distinctive values go through the real pipeline (the
services as processes on a NATS and a database of the test's own) over MLLP and FHIR, valid
and malformed, so that refusal, quarantine and exception paths all run. Then none of those
values may appear in any service's log, any service's /metrics, any answer to a bad input
(HTTP problem bodies, MLLP ACKs) or any exception event's ``message``. (The exception
store's ``offending_value`` and kept inputs hold them by design: access-controlled, issue 17.)"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from carebus_contracts.subjects import STREAM_EXCEPTIONS
from carebus_scenario.observe import wait_quiet
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsServer
from tests.support import auth
from tests.support.fhir_examples import EXAMPLES_DIR
from tests.support.samples import SAMPLES
from tests.support.scheduling import MllpClient
from tests.support.stacks import running_stack

pytestmark = pytest.mark.slow

# Distinctive enough to be found only where they leaked.
NAME_FAMILY = "QZXCANARYFAMILY"
NAME_GIVEN = "QZXCANARYGIVEN"
MRN = "QZXMRN778812"
ACCOUNT = "QZXACCT551903"
PHONE = "5550199337"
STREET = "QZXCANARY STREET 7"
DOB = "19020317"
BAD_DOB = "QZXDOB1902"
CANARIES = (NAME_FAMILY, NAME_GIVEN, MRN, ACCOUNT, PHONE, STREET, BAD_DOB)
SITE = "SITE01"


def _siu(control_id: str, *, slot: str = "20250310091500-0600", dob: str = DOB) -> bytes:
    npi = "1234567893^SMITH^ANNA^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI"
    return "\r".join(
        [
            "MSH|^~\\&|CADENCE|SITE01|CAREBUS|CAREBUS|20250301120000-0600||SIU^S12|"
            f"{control_id}|P|2.5.1",
            f"SCH|P-{control_id}|F-{control_id}|||||CHECKUP^Annual check-up|ROUTINE|30|min|"
            f"^^30^{slot}",
            f"PID|1||{MRN}^^^SITE01^MR||{NAME_FAMILY}^{NAME_GIVEN}||{dob}|F|||{STREET}||"
            f"{PHONE}|||||{ACCOUNT}",
            f"PV1|1|O|CLINIC-A^101^^SITE01||||{npi}",
            f"AIS|1|A|99213^Office visit^CPT|{slot}|||30|min",
        ]
    ).encode()


def _appointment(**changes: Any) -> bytes:
    body = json.loads((SAMPLES / EXAMPLES_DIR / "Appointment-example.json").read_bytes())
    body["participant"][0]["actor"] = {
        "reference": f"Patient/{MRN}",
        "display": f"{NAME_GIVEN} {NAME_FAMILY}",
    }
    body["comment"] = f"call {PHONE}, account {ACCOUNT}"
    body.update(changes)
    return json.dumps(body).encode()


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    async with running_stack(database_url, private_nats.url, tmp_path) as services:
        yield services


async def _mllp(port: int, messages: list[bytes]) -> list[str]:
    client = await MllpClient.connect(port)
    try:
        return [(await client.send(m)).decode(errors="replace") for m in messages]
    finally:
        await client.close()


async def _fhir(base: str) -> list[str]:
    headers = {"Content-Type": "application/fhir+json", "X-Carebus-Site": SITE}
    puts = {
        "canary-ok": _appointment(id="canary-ok"),
        "canary-bad-start": _appointment(id="canary-bad-start", start=f"{BAD_DOB}T09:00:00Z"),
        "canary-bad-status": _appointment(id="canary-bad-status", status=NAME_FAMILY),
        "canary-bad-type": _appointment(id="canary-bad-type", priority=MRN),
    }
    answers = []
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=auth.HEADERS) as client:
        for resource_id, body in puts.items():
            reply = await client.put(
                f"/fhir/Appointment/{resource_id}", content=body, headers=headers
            )
            answers.append(f"{reply.status_code} {reply.text}")
        broken = b'{"resourceType": "Appointment", "id": "' + MRN.encode() + b'", "status": '
        reply = await client.put("/fhir/Appointment/broken", content=broken, headers=headers)
        answers.append(f"{reply.status_code} {reply.text}")
    return answers


async def _exception_messages(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(STREAM_EXCEPTIONS)).state
        texts = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            event = json.loads((await js.get_msg(STREAM_EXCEPTIONS, seq)).data or b"{}")
            texts.append(str(event.get("message", "")))
        return texts
    finally:
        await nc.close()


def _metrics(stack: ServiceStack) -> dict[str, str]:
    found = {}
    for name in stack.services:
        request = urllib.request.Request(f"{stack.http(name)}/metrics", headers=auth.HEADERS)
        with urllib.request.urlopen(request, timeout=10) as reply:
            found[name] = reply.read().decode()
    return found


def _leaks(where: str, text: str) -> list[str]:
    return [f"{canary} in {where}" for canary in CANARIES if canary in text]


async def test_no_canary_value_leaves_the_stores_that_must_hold_it(stack: ServiceStack) -> None:
    endpoints = stack.endpoints
    acks = await _mllp(
        endpoints.scheduling_mllp[1],
        [
            _siu("CANARY-1"),  # accepted, then quarantined: no master data in this database
            _siu("CANARY-2", slot=""),  # refused: no slot
            _siu("CANARY-3", dob=BAD_DOB),  # a date of birth that is no date
            b"PID|1||" + MRN.encode() + b"||" + NAME_FAMILY.encode(),  # no MSH at all
        ],
    )
    answers = await _fhir(endpoints.scheduling_http)
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=45)

    messages = await _exception_messages(endpoints.nats_url)
    assert len(messages) >= 3  # the refusals and the quarantine did run
    assert any(a.startswith("4") for a in answers)  # so did the HTTP refusals
    logs = {p.name: p.read_text(errors="replace") for p in sorted(stack.logs.glob("*.log"))}
    assert logs  # every service wrote one

    leaks = [leak for n, ack in enumerate(acks) for leak in _leaks(f"MLLP ACK {n}", ack)]
    # A bad input's problem body (an accepted one's answer is the submitter's own resource).
    problems = [a for a in answers if not a.startswith("2")]
    leaks += [leak for n, a in enumerate(problems) for leak in _leaks(f"problem body {n}", a)]
    leaks += [leak for n, m in enumerate(messages) for leak in _leaks(f"exception message {n}", m)]
    leaks += [leak for name, text in logs.items() for leak in _leaks(f"log {name}", text)]
    leaks += [
        leak for name, text in _metrics(stack).items() for leak in _leaks(f"{name} /metrics", text)
    ]
    assert leaks == [], "\n".join(leaks)
