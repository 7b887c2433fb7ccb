"""PHI canary: patient fields carrying distinctive values go through the real pipeline (the
services as processes on a NATS and a database of the test's own) over every intake (MLLP
SIU and DFT, FHIR Appointment and billing resources and Bundles, the X12 835 upload and
inbox, the master-data import), hundreds of valid and malformed inputs each, so that
refusal, quarantine and exception paths all run. Then none of those values may appear in any
service's log, any service's /metrics, any answer to a bad input (HTTP problem bodies, MLLP
ACKs with their MSA-3/ERR) or any exception event's ``message``. (The exception store's
``offending_value`` and kept inputs hold them by design: sealed and access-controlled,
docs/decisions/028.)"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Callable
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
from tests.support.x12_render import ClaimSpec, LineSpec, RemittanceSpec, render_835

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
# Inputs per intake (each kind of malformation repeats with other control ids).
PER_INTAKE = 120


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


# -- generated inputs: each kind repeats with another control id, up to PER_INTAKE --------
def _siu_kinds() -> list[Callable[[str], bytes]]:
    broken_name = "\r" + NAME_FAMILY + "|x"
    return [
        lambda c: _siu(c),  # accepted, then quarantined (no master data here)
        lambda c: _siu(c, slot=""),  # refused: no slot
        lambda c: _siu(c, dob=BAD_DOB),  # a date of birth that is no date
        lambda c: _siu(c, slot=BAD_DOB),  # a slot that is no timestamp
        lambda c: _siu(c).replace(b"|||30|min", f"|||30|{NAME_FAMILY}".encode()),  # unit
        lambda c: _siu(c).replace(b"|||30|min", f"|||{MRN}|min".encode()),  # duration
        lambda c: _siu(c).replace(b"SIU^S12", f"SIU^{NAME_GIVEN}".encode()),  # trigger
        lambda c: _siu(c).replace(b"SIU^S12", f"{NAME_FAMILY}^S12".encode()),  # type
        lambda c: _siu(c).replace(b"|P|2.5.1", f"|P|{MRN}".encode()),  # version
        lambda c: _siu(c).replace(b"|P|2.5.1", f"|P|2.5.1||||||{NAME_GIVEN}".encode()),
        lambda c: _siu(c) + broken_name.encode(),  # a segment name that is no name
        lambda c: _siu(c).replace(NAME_GIVEN.encode(), NAME_GIVEN.encode() + b"\xff"),
        lambda c: b"PID|1||" + MRN.encode() + b"||" + NAME_FAMILY.encode(),  # no MSH
    ]


_DFT_MSH = "MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^{trigger}|{control}|P|2.5"
_DFT_FT1 = "FT1|1|CH-{control}||20250310||CG|99213^Visit^CPT|||2|150.50&USD"


def _dft(control: str, ft1: str | None = None, trigger: str = "P03") -> bytes:
    lines = [
        _DFT_MSH.format(trigger=trigger, control=control),
        "EVN|P03|20250310091500",
        f"PID|1||{MRN}^^^HOSP^MR||{NAME_FAMILY}^{NAME_GIVEN}||{DOB}|F|||{STREET}||{PHONE}",
        f"PV1|1|O|CLIN1^^^MAIN||||||||||||||||{ACCOUNT}",
        (ft1 or _DFT_FT1).format(control=control),
    ]
    return "\r".join(lines).encode()


def _dft_kinds() -> list[Callable[[str], bytes]]:
    ft1 = "FT1|{n}|CH-{{control}}||{date}||{kind}|99213^Visit^CPT|||{qty}|{amount}"

    def line(n: str = "1", date: str = "20250310", kind: str = "CG", qty: str = "2",
             amount: str = "150.50&USD") -> str:  # fmt: skip
        return ft1.format(n=n, date=date, kind=kind, qty=qty, amount=amount)

    return [
        lambda c: _dft(c),  # accepted
        lambda c: _dft(c, line(amount=f"{MRN}&USD")),  # amount not a number
        lambda c: _dft(c, line(amount="110.005&USD")),  # too many decimals
        lambda c: _dft(c, line(amount=f"110.00&{NAME_FAMILY}")),  # currency
        lambda c: _dft(c, line(kind=NAME_GIVEN)),  # transaction type
        lambda c: _dft(c, line(qty=PHONE + "x")),  # quantity
        lambda c: _dft(c, line(n=MRN)),  # set id
        lambda c: _dft(c, line(date=BAD_DOB)),  # transaction date
        lambda c: _dft(c, trigger=NAME_FAMILY),  # trigger
    ]


def _generated(kinds: list[Callable[[str], bytes]], prefix: str) -> list[bytes]:
    return [kinds[n % len(kinds)](f"{prefix}{n}") for n in range(PER_INTAKE)]


def _charge_item(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": [{"value": f"CH-{ACCOUNT}"}],
        "status": "billable",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
        "subject": {"reference": f"Patient/{MRN}", "display": f"{NAME_GIVEN} {NAME_FAMILY}"},
        "context": {"reference": "Encounter/ENC-1"},
        "occurrenceDateTime": "2025-03-10T09:15:00-06:00",
        "performer": [{"actor": {"reference": "Practitioner/DR-1"}}],
        "costCenter": {"reference": "Organization/CARDIO"},
        "quantity": {"value": 2},
        "priceOverride": {"value": 150.10, "currency": "USD"},
        "note": [{"text": f"call {PHONE} at {STREET}"}],
    }
    body.update(changes)
    return json.dumps(body).encode()


def _billing_fhir_kinds() -> list[tuple[str, bytes]]:
    entry = {
        "resource": json.loads(_charge_item()),
        "request": {"method": "POST", "url": "ChargeItem"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    bad_method = {**entry, "request": {"method": MRN, "url": "ChargeItem"}}
    return [
        ("/fhir/ChargeItem", _charge_item()),
        ("/fhir/ChargeItem", _charge_item(status=NAME_FAMILY)),
        ("/fhir/ChargeItem", _charge_item(priceOverride={"value": 1.5, "currency": NAME_GIVEN})),
        ("/fhir/ChargeItem", _charge_item(priceOverride={"value": 1.005, "currency": "USD"})),
        ("/fhir/ChargeItem", _charge_item(resourceType=MRN)),
        ("/fhir/ChargeItem", _charge_item(quantity={"value": PHONE})),
        ("/fhir/ChargeItem", b'{"resourceType": "ChargeItem", "id": "' + MRN.encode() + b'",'),
        ("/fhir", json.dumps({**bundle, "type": NAME_FAMILY}).encode()),
        ("/fhir", json.dumps({**bundle, "entry": [bad_method]}).encode()),
        ("/fhir", json.dumps({**bundle, "resourceType": NAME_GIVEN}).encode()),
    ]


def _appointment_kinds() -> list[Callable[[int], bytes]]:
    return [
        lambda n: _appointment(id=f"canary-{n}"),
        lambda n: _appointment(id=f"canary-{n}", start=f"{BAD_DOB}T09:00:00Z"),
        lambda n: _appointment(id=f"canary-{n}", status=NAME_FAMILY),
        lambda n: _appointment(id=f"canary-{n}", priority=MRN),
        lambda n: _appointment(id=MRN),  # the body's id is not the URL's
        lambda n: _appointment(id=f"canary-{n}", resourceType=NAME_GIVEN),
        lambda n: b'{"resourceType": "Appointment", "id": "' + MRN.encode() + b'", "status": ',
    ]


def _remittances() -> list[bytes]:
    spec = RemittanceSpec(
        claims=[ClaimSpec(ACCOUNT, 10000, [], [LineSpec(10000, [("CO", "45", 1500)])])],
        provider_adjustments=[],
    )
    patient = f"NM1*QC*1*{NAME_FAMILY}*{NAME_GIVEN}****MI*{MRN}"
    valid = render_835(spec).replace("NM1*QC*1*DOE*JANE****MI*M123", patient)
    clp = f"CLP*{ACCOUNT}*1*"
    kinds = [
        valid,
        valid.replace("*100.00*85.00**12*", f"*{PHONE}X*85.00**12*"),  # amount
        valid.replace(clp, f"CLP*{ACCOUNT}*{NAME_GIVEN}*"),  # claim status code
        valid.replace("*100.00*85.00**12*", "*100.00*86.00**12*"),  # unbalanced claim
        valid.replace("DTM*405*20240101", f"DTM*405*{BAD_DOB}"),  # a date that is no date
        valid.replace("NM1*QC", NAME_FAMILY + "!", 1),  # a segment that is none
        valid.replace("*XX*1234567893", f"*XX*{MRN}"),  # payee NPI
        f"{NAME_FAMILY} {MRN} not X12 at all",
    ]
    assert all(k != valid for k in kinds[1:])  # every mutation took
    return [kinds[n % len(kinds)].encode() for n in range(PER_INTAKE // 4)]


async def _http(base: str, requests: list[tuple[str, str, bytes]]) -> list[str]:
    headers = {"Content-Type": "application/fhir+json", "X-Carebus-Site": SITE, **auth.HEADERS}
    answers = []
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        for method, path, body in requests:
            reply = await client.request(method, path, content=body)
            answers.append(f"{reply.status_code} {reply.text}")
    return answers


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
    headers = {"Content-Type": "application/fhir+json", "X-Carebus-Site": SITE, **auth.HEADERS}
    puts = {
        "canary-ok": _appointment(id="canary-ok"),
        "canary-bad-start": _appointment(id="canary-bad-start", start=f"{BAD_DOB}T09:00:00Z"),
        "canary-bad-status": _appointment(id="canary-bad-status", status=NAME_FAMILY),
        "canary-bad-type": _appointment(id="canary-bad-type", priority=MRN),
    }
    answers = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
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
        with urllib.request.urlopen(request, timeout=10) as reply:  # metrics:read
            found[name] = reply.read().decode()
    return found


def _leaks(where: str, text: str) -> list[str]:
    return [f"{canary} in {where}" for canary in CANARIES if canary in text]


async def test_no_canary_value_leaves_the_stores_that_must_hold_it(stack: ServiceStack) -> None:
    endpoints = stack.endpoints
    acks = await _mllp(endpoints.scheduling_mllp[1], _generated(_siu_kinds(), "CANARY-S"))
    acks += await _mllp(endpoints.billing_mllp[1], _generated(_dft_kinds(), "CANARY-D"))
    appointments = _appointment_kinds()
    answers = await _fhir(endpoints.scheduling_http)
    answers += await _http(
        endpoints.scheduling_http,
        [
            ("PUT", f"/fhir/Appointment/canary-{n}", appointments[n % len(appointments)](n))
            for n in range(PER_INTAKE)
        ],
    )
    billing = _billing_fhir_kinds()
    answers += await _http(
        endpoints.billing_http,
        [("POST", *billing[n % len(billing)]) for n in range(PER_INTAKE)],
    )
    remittances = _remittances()
    answers += await _http(
        endpoints.billing_http, [("POST", "/v1/remittances", body) for body in remittances]
    )
    assert endpoints.inbox_dir is not None
    for n, body in enumerate(remittances[:8]):
        (endpoints.inbox_dir / f".canary-{n}.835").write_bytes(body)
        (endpoints.inbox_dir / f".canary-{n}.835").rename(endpoints.inbox_dir / f"canary-{n}.835")
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    messages = await _exception_messages(endpoints.nats_url)
    assert len(messages) >= PER_INTAKE  # the refusals and the quarantines did run
    refused = [a for a in acks if "|AE|" in a or "|AR|" in a]
    assert len(refused) >= PER_INTAKE  # MSA with AE/AR, MSA-3 and ERR texts included
    problems = [a for a in answers if not a.startswith("2")]
    assert len(problems) >= PER_INTAKE  # HTTP refusals of every intake
    assert not [a for a in problems if a.startswith(("401", "403", "5"))]  # refused for content
    logs = {p.name: p.read_text(errors="replace") for p in sorted(stack.logs.glob("*.log"))}
    assert logs  # every service wrote one

    leaks = [leak for n, ack in enumerate(acks) for leak in _leaks(f"MLLP ACK {n}", ack)]
    # A bad input's problem body (an accepted one's answer is the submitter's own resource).
    leaks += [leak for n, a in enumerate(problems) for leak in _leaks(f"problem body {n}", a)]
    leaks += [leak for n, m in enumerate(messages) for leak in _leaks(f"exception message {n}", m)]
    leaks += [leak for name, text in logs.items() for leak in _leaks(f"log {name}", text)]
    leaks += [
        leak for name, text in _metrics(stack).items() for leak in _leaks(f"{name} /metrics", text)
    ]
    for folder in ("done", "rejected"):  # moved inbox files: sealed or at least no report text
        for path in (endpoints.inbox_dir / folder).glob("*.reason"):
            leaks += _leaks(f"inbox report {path.name}", path.read_text(errors="replace"))
    assert leaks == [], "\n".join(sorted(set(leaks))[:50])
