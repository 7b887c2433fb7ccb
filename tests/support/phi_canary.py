"""Canary PHI for tests/security/test_phi_canary.py: the distinctive values, the valid and
malformed inputs of every intake that carry them, and the collectors that look for them
wherever they must not be (logs, /metrics, spans, stream subjects and headers, advisories,
exception texts, database columns)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from carebus_contracts import encode
from carebus_contracts.subjects import STREAM_EXCEPTIONS
from carebus_scenario.npi import check_digit
from carebus_shared.jetstream.topology import STREAM_ADVISORIES
from tests.support.billing import CHARGE_ITEM
from tests.support.fhir_examples import EXAMPLES_DIR
from tests.support.mapper import charge, validate
from tests.support.samples import SAMPLES
from tests.support.scheduling import siu_message
from tests.support.x12_render import ClaimSpec, LineSpec, RemittanceSpec, render_835

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
# One regular expression for PostgreSQL and Python alike (the canaries are plain ASCII).
CANARY_RE = "|".join(re.escape(c) for c in CANARIES)
SITE = "SITE01"

Kind = Callable[[str], bytes]


def leaks(where: str, text: str) -> list[str]:
    """``<canary> in <where>`` for every canary ``text`` holds."""
    return [f"{canary} in {where}" for canary in CANARIES if canary in text]


def cycle(kinds: list[Kind], prefix: str, count: int) -> list[bytes]:
    """``count`` inputs, the kinds in turn, each with a control id of its own."""
    return [kinds[n % len(kinds)](f"{prefix}{n}") for n in range(count)]


# -- HL7 v2 SIU (scheduling, MLLP) -------------------------------------------------------------
def siu(control_id: str, *, slot: str = "20250310091500-0600", dob: str = DOB) -> bytes:
    pid = (
        f"PID|1||{MRN}^^^SITE01^MR||{NAME_FAMILY}^{NAME_GIVEN}||{dob}|F|||{STREET}||{PHONE}"
        f"|||||{ACCOUNT}"
    )
    return siu_message(control_id, slot, pid)


def siu_kinds() -> list[Kind]:
    broken_name = "\r" + NAME_FAMILY + "|x"
    return [
        lambda c: siu(c),  # accepted, validated, mapped and posted
        lambda c: siu(c, slot=""),  # refused: no slot
        lambda c: siu(c, dob=BAD_DOB),  # a date of birth that is no date
        lambda c: siu(c, slot=BAD_DOB),  # a slot that is no timestamp
        lambda c: siu(c).replace(b"|||30|min", f"|||30|{NAME_FAMILY}".encode()),  # unit
        lambda c: siu(c).replace(b"|||30|min", f"|||{MRN}|min".encode()),  # duration
        lambda c: siu(c).replace(b"SIU^S12", f"SIU^{NAME_GIVEN}".encode()),  # trigger
        lambda c: siu(c).replace(b"SIU^S12", f"{NAME_FAMILY}^S12".encode()),  # type
        lambda c: siu(c).replace(b"|P|2.5.1", f"|P|{MRN}".encode()),  # version
        lambda c: siu(c).replace(b"|P|2.5.1", f"|P|2.5.1||||||{NAME_GIVEN}".encode()),
        lambda c: siu(c) + broken_name.encode(),  # a segment name that is no name
        lambda c: siu(c).replace(NAME_GIVEN.encode(), NAME_GIVEN.encode() + b"\xff"),
        lambda c: siu(c).replace(b"^^30^2025", f"^^30^{PHONE}".encode()),  # timing quantity
        lambda c: siu(c).replace(b"|ROUTINE|", f"|{NAME_GIVEN}|".encode()),  # priority
        lambda c: b"PID|1||" + MRN.encode() + b"||" + NAME_FAMILY.encode(),  # no MSH
    ]


# -- HL7 v2 DFT (billing, MLLP) ----------------------------------------------------------------
_DFT_MSH = "MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^{trigger}|{control}|P|2.5"
_DFT_FT1 = "FT1|1|CH-{control}||20250310||CG|99213^Visit^CPT|||2|150.50&USD||CARDIO"


def dft(control: str, ft1: str | None = None, trigger: str = "P03") -> bytes:
    lines = [
        _DFT_MSH.format(trigger=trigger, control=control),
        "EVN|P03|20250310091500",
        f"PID|1||{MRN}^^^HOSP^MR||{NAME_FAMILY}^{NAME_GIVEN}||{DOB}|F|||{STREET}||{PHONE}",
        f"PV1|1|O|CLIN1^^^MAIN||||||||||||||||{ACCOUNT}",
        (ft1 or _DFT_FT1).format(control=control),
    ]
    return "\r".join(lines).encode()


def dft_kinds() -> list[Kind]:
    ft1 = "FT1|{n}|CH-{{control}}||{date}||{kind}|99213^Visit^CPT|||{qty}|{amount}"

    def line(n: str = "1", date: str = "20250310", kind: str = "CG", qty: str = "2",
             amount: str = "150.50&USD") -> str:  # fmt: skip
        return ft1.format(n=n, date=date, kind=kind, qty=qty, amount=amount)

    return [
        lambda c: dft(c),  # accepted
        lambda c: dft(c, line(amount=f"{MRN}&USD")),  # amount not a number
        lambda c: dft(c, line(amount="110.005&USD")),  # too many decimals
        lambda c: dft(c, line(amount=f"110.00&{NAME_FAMILY}")),  # currency
        lambda c: dft(c, line(kind=NAME_GIVEN)),  # transaction type
        lambda c: dft(c, line(qty=PHONE + "x")),  # quantity
        lambda c: dft(c, line(n=MRN)),  # set id
        lambda c: dft(c, line(date=BAD_DOB)),  # transaction date
        lambda c: dft(c, trigger=NAME_FAMILY),  # trigger
        lambda c: dft(c).replace(b"EVN|P03|20250310091500", f"EVN|P03|{BAD_DOB}".encode()),
    ]


# -- FHIR Appointment (scheduling) -------------------------------------------------------------
def appointment(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        (SAMPLES / EXAMPLES_DIR / "Appointment-example.json").read_bytes()
    )
    body["participant"][0]["actor"] = {
        "reference": f"Patient/{MRN}",
        "display": f"{NAME_GIVEN} {NAME_FAMILY}",
    }
    body["comment"] = f"call {PHONE}, account {ACCOUNT}"
    body.update(changes)
    return body


def appointment_kinds() -> list[Callable[[str], dict[str, Any]]]:
    """Appointments by id: the valid one and ones that break a field with a canary."""
    return [
        lambda i: appointment(id=i),
        lambda i: appointment(id=i, start=f"{BAD_DOB}T09:00:00Z"),
        lambda i: appointment(id=i, end=f"{PHONE}"),
        lambda i: appointment(id=i, status=NAME_FAMILY),
        lambda i: appointment(id=i, priority=MRN),
        lambda i: appointment(id=i, minutesDuration=STREET),
        lambda i: appointment(id=i, resourceType=NAME_GIVEN),
        lambda i: appointment(id=i, participant=[{"actor": {"reference": MRN}, "status": MRN}]),
        lambda i: appointment(id=i, **{NAME_FAMILY: MRN}),  # an unknown element
    ]


def appointment_requests(count: int) -> list[tuple[str, str, bytes]]:
    """PUTs and POSTs of single Appointments, a broken document among them."""
    kinds = appointment_kinds()
    out: list[tuple[str, str, bytes]] = []
    for n in range(count):
        body = kinds[n % len(kinds)](f"c-{n}")
        if n % 10 == 9:  # JSON that ends mid-value
            raw = b'{"resourceType": "Appointment", "id": "' + MRN.encode() + b'", "status": '
            out.append(("PUT", f"/fhir/Appointment/c-{n}", raw))
        elif n % 10 == 8:  # the body's id is not the URL's
            out.append(("PUT", f"/fhir/Appointment/c-{n}", json.dumps({**body, "id": MRN})))
        elif n % 3 == 0:  # a create: the server names it
            body.pop("id")
            out.append(("POST", "/fhir/Appointment", json.dumps(body)))
        else:
            out.append(("PUT", f"/fhir/Appointment/c-{n}", json.dumps(body)))
    return [(m, p, b.encode() if isinstance(b, str) else b) for m, p, b in out]


def appointment_bundles(bundles: int, per_bundle: int) -> tuple[list[bytes], int]:
    """Batch and transaction Bundles of the appointment kinds; (bodies, entries)."""
    kinds = appointment_kinds()
    bodies = []
    for b in range(bundles):
        kind = "transaction" if b % 4 == 3 else "batch"
        entries = []
        for e in range(per_bundle):
            resource = kinds[(b + e) % len(kinds)](f"b{b}-{e}")
            entries.append({
                "fullUrl": f"urn:uuid:b{b}-{e}", "resource": resource,
                "request": {"method": "PUT", "url": f"Appointment/b{b}-{e}"},
            })  # fmt: skip
        bodies.append(json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}))
    return [b.encode() for b in bodies], bundles * per_bundle


# -- FHIR billing resources --------------------------------------------------------------------
def charge_item(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        **CHARGE_ITEM,
        "identifier": [{"value": "CH-CANARY"}],
        "subject": {"reference": f"Patient/{MRN}", "display": f"{NAME_GIVEN} {NAME_FAMILY}"},
        "note": [{"text": f"call {PHONE} at {STREET}"}],
    }
    body.update(changes)
    return body


def _charge_kinds() -> list[Callable[[str], dict[str, Any]]]:
    def ident(i: str) -> list[dict[str, str]]:
        return [{"value": f"CH-{i}"}]

    return [
        lambda i: charge_item(identifier=ident(i)),
        lambda i: charge_item(identifier=ident(i), status=NAME_FAMILY),
        lambda i: charge_item(
            identifier=ident(i), priceOverride={"value": 1.5, "currency": NAME_GIVEN}
        ),
        lambda i: charge_item(
            identifier=ident(i), priceOverride={"value": 1.005, "currency": "USD"}
        ),
        lambda i: charge_item(identifier=ident(i), quantity={"value": PHONE}),
        lambda i: charge_item(identifier=ident(i), occurrenceDateTime=BAD_DOB),
        lambda i: charge_item(identifier=ident(i), code={"coding": [{"code": MRN}]}),
        lambda i: charge_item(identifier=ident(i), resourceType=MRN),
    ]


def billing_requests(count: int) -> list[tuple[str, str, bytes]]:
    kinds = _charge_kinds()
    entry = {"resource": charge_item(), "request": {"method": "POST", "url": "ChargeItem"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    bad_method = {**entry, "request": {"method": MRN, "url": "ChargeItem"}}
    specials: list[tuple[str, bytes]] = [
        ("/fhir/ChargeItem", b'{"resourceType": "ChargeItem", "id": "' + MRN.encode() + b'",'),
        ("/fhir", json.dumps({**bundle, "type": NAME_FAMILY}).encode()),
        ("/fhir", json.dumps({**bundle, "entry": [bad_method]}).encode()),
        ("/fhir", json.dumps({**bundle, "resourceType": NAME_GIVEN}).encode()),
        (f"/fhir/{NAME_FAMILY}", json.dumps(charge_item()).encode()),
    ]
    out = []
    for n in range(count):
        if n % 8 == 7:
            out.append(("POST", *specials[(n // 8) % len(specials)]))
        else:
            body = kinds[n % len(kinds)](f"F{n}")
            out.append(("POST", "/fhir/ChargeItem", json.dumps(body).encode()))
    return out


def billing_bundles(bundles: int, per_bundle: int) -> tuple[list[bytes], int]:
    kinds = _charge_kinds()
    bodies = []
    for b in range(bundles):
        entries = [
            {"resource": kinds[(b + e) % len(kinds)](f"B{b}-{e}"),
             "request": {"method": "POST", "url": "ChargeItem"}}
            for e in range(per_bundle)
        ]  # fmt: skip
        kind = "transaction" if b % 4 == 3 else "batch"
        bodies.append(json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}))
    return [b.encode() for b in bodies], bundles * per_bundle


# -- X12 835 (upload and inbox) ----------------------------------------------------------------
def remittances(count: int) -> list[bytes]:
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
        valid.replace("CAS*CO*45*15", f"CAS*{NAME_GIVEN}*45*15"),  # adjustment group
        f"{NAME_FAMILY} {MRN} not X12 at all",
    ]
    assert all(k != valid for k in kinds[1:])  # every mutation took
    return [kinds[n % len(kinds)].encode() for n in range(count)]


# -- scheduling CSV import ---------------------------------------------------------------------
CSV_HEADER = (
    "appointment_id,event,status,slot_start,slot_end,duration_minutes,patient_ref,"
    "provider_code,location_code,department_code,service_code,reason,site,updated_at"
)


def csv_rows(count: int) -> list[str]:
    start = "2025-03-10T09:15:00-06:00"

    def row(i: str, *, event: str = "", status: str = "booked", slot: str = start,
            end: str = "", minutes: str = "30", patient: str = MRN,
            updated: str = "2025-03-01T12:00:00-06:00") -> str:  # fmt: skip
        reason = f"{NAME_FAMILY} {NAME_GIVEN} {PHONE}"
        return (
            f"CSV-{i},{event},{status},{slot},{end},{minutes},{patient},PRV1,LOC1,,99213,"
            f"{reason},{SITE},{updated}"
        )

    kinds: list[Callable[[str], str]] = [
        lambda i: row(i),  # accepted
        lambda i: row(i, status=NAME_FAMILY),
        lambda i: row(i, slot=BAD_DOB),
        lambda i: row(i, minutes=MRN),
        lambda i: row(i, minutes="", end=PHONE),
        lambda i: row(i, event=NAME_GIVEN),
        lambda i: row(i, end="2025-03-10T08:00:00-06:00"),  # ends before it starts
        lambda i: row(i, updated=BAD_DOB),
        lambda i: row(i, patient=""),  # required
        lambda i: row(i, minutes="-" + PHONE),
    ]
    return [kinds[n % len(kinds)](str(n)) for n in range(count)]


# -- master data (API and import) --------------------------------------------------------------
def npi(n: int) -> str:
    payload = f"1{n:08d}"
    return payload + check_digit(payload)


def provider_csv(first: int, count: int, *, malformed: bool) -> tuple[bytes, int]:
    """An import file of providers named after the canaries; with ``malformed`` every other
    row breaks a field with one (so the whole file is refused, naming rows and fields)."""
    lines = ["provider_id,npi,name,taxonomy_code,active,valid_from"]
    for n in range(first, first + count):
        fields = [f"PRV-{n}", npi(n), f"{NAME_FAMILY} {NAME_GIVEN}", "207Q00000X", "true", ""]
        if malformed and n % 2:
            broken = (n // 2) % 4
            fields[[1, 4, 5, 3][broken]] = [MRN, NAME_GIVEN, BAD_DOB, PHONE * 3][broken]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode(), count


def provider_json(first: int, count: int, *, malformed: bool) -> tuple[bytes, int]:
    rows: list[dict[str, Any]] = []
    for n in range(first, first + count):
        row: dict[str, Any] = {"provider_id": f"PRV-{n}", "npi": npi(n), "name": NAME_FAMILY}
        if malformed and n % 2:
            row[["npi", "active", "valid_to", NAME_GIVEN][(n // 2) % 4]] = MRN
        rows.append(row)
    return json.dumps(rows).encode(), count


def masterdata_requests(count: int) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Single creates and replaces, every one refused for a field that carries a canary."""
    json_type = {"Content-Type": "application/json"}
    bodies: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "/v1/providers", json_type,
         json.dumps({"provider_id": "PRV-X", "npi": MRN, "name": NAME_FAMILY}).encode()),
        ("POST", "/v1/providers", json_type,
         json.dumps({"provider_id": "PRV-X", "npi": npi(1), "name": 7, NAME_GIVEN: 1}).encode()),
        ("POST", "/v1/providers", json_type, b'{"provider_id": "' + MRN.encode() + b'", "npi'),
        ("POST", "/v1/locations", json_type,
         json.dumps({"location_id": "L-X", "name": STREET, "place_of_service": PHONE,
                     "time_zone": NAME_FAMILY}).encode()),
        ("POST", "/v1/payers", json_type,
         json.dumps({"payer_id": "P-X", "name": NAME_GIVEN, "payer_class": MRN}).encode()),
        ("PUT", "/v1/providers/PRV-0", {**json_type, "If-Match": f'"{MRN}"'},
         json.dumps({"provider_id": "PRV-0", "npi": npi(0), "name": NAME_FAMILY}).encode()),
        ("POST", "/v1/providers/import", {"Content-Type": f"text/{NAME_FAMILY}"}, b"x"),
        ("POST", "/v1/providers/import", {"Content-Type": "text/csv"},
         f"provider_id,{NAME_GIVEN}\nPRV-Y,{MRN}\n".encode()),
    ]  # fmt: skip
    return [bodies[n % len(bodies)] for n in range(count)]


# -- master data the valid inputs reference (so they are validated, mapped and posted) ---------
# The codes each intake's valid input sends, as canonical ids (the validator takes a code as
# its canonical id when no cross-reference names it): HL7 SIU, HL7 DFT, FHIR Appointment, CSV,
# FHIR ChargeItem. The SIU's provider is an NPI; the 835's payer is cross-referenced. The
# providers' home department is the department of the appointments that name none.
_LOCATIONS = ("CLINIC-A", "CLIN1", "1", "LOC1")
_DEPARTMENTS = ("394814009", "CARDIO")
_PROVIDERS = (("PRV-SIU", "1234567893"), ("example", npi(9001)), ("PRV1", npi(9002)),
              ("DR-1", npi(9003)))  # fmt: skip
_SERVICES = ("99213", "52")
X12_PAYER = "1999999999"


def pipeline_masterdata() -> list[tuple[str, list[dict[str, Any]]]]:
    """(collection, records) for the validator's bulk import, in referential order; no
    record carries a canary (the providers named after them are imported separately)."""
    centre = "CC-CANARY"
    return [
        ("cost-centres", [{"cost_centre_id": centre, "name": "Canary clinic"}]),
        ("locations", [
            {"location_id": code, "name": f"Clinic {code}", "site_code": SITE,
             "place_of_service": "11", "time_zone": "America/Chicago", "cost_centre_id": centre}
            for code in _LOCATIONS
        ]),
        ("departments", [
            {"department_id": code, "name": f"Department {code}", "cost_centre_id": centre}
            for code in _DEPARTMENTS
        ]),
        ("providers", [
            {"provider_id": pid, "npi": number, "name": f"Clinician {pid}",
             "department_id": "CARDIO"}
            for pid, number in _PROVIDERS
        ]),
        ("services", [
            {"service_code": code, "code_system": "CPT", "description": f"Service {code}"}
            for code in _SERVICES
        ]),
        ("payers", [
            {"payer_id": "PAY-CANARY", "name": "Canary payer", "payer_class": "commercial"}
        ]),
        ("cross-references", [
            {"source_system": "x12-835", "kind": "payer", "source_code": X12_PAYER,
             "canonical_id": "PAY-CANARY"}
        ]),
    ]  # fmt: skip


# -- the mapper's preview (an event in, what would become of it) -----------------------------
def preview_requests(count: int) -> list[tuple[str, str, dict[str, str], bytes]]:
    valid = json.loads(encode(validate(charge("CH-P", 777, payer_code=None))))

    def changed(path: tuple[str, ...], value: Any) -> bytes:
        body = json.loads(json.dumps(valid))
        node = body
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return json.dumps(body).encode()

    charge_path = ("original", "charge")
    bodies = [
        changed(("original", "charge", "patient_ref"), MRN),  # valid: the patient's own ref
        changed(("event_type",), NAME_FAMILY),
        changed(("schema_version",), MRN),
        changed(("original", "event_type"), NAME_GIVEN),
        changed((*charge_path, "amount"), {"amount_minor": PHONE, "currency": "USD"}),
        changed((*charge_path, "amount"), {"amount_minor": 1, "currency": NAME_FAMILY}),
        changed((*charge_path, "service_date"), BAD_DOB),
        changed(("enrichment", "payer_class"), MRN),
        b'{"event_type": "validated.charge.posted", "schema_version": "' + MRN.encode() + b'"',
    ]
    json_type = {"Content-Type": "application/json"}
    return [("POST", "/v1/preview", json_type, bodies[n % len(bodies)]) for n in range(count)]


# -- where to look -----------------------------------------------------------------------------
async def stream_leaks(nats_url: str) -> list[str]:
    """Every stream's messages: subjects and headers of all (trace context among them), the
    ``message`` of exception events, and the whole of advisories. (The other payloads are
    the events themselves: a store that must hold them.)"""
    nc = await nats.connect(nats_url)
    found: list[str] = []
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name
            assert name is not None
            for msg in await _all_messages(js, name, info.state.messages):
                where = f"stream {name} #{msg.metadata.sequence.stream}"
                found += leaks(f"{where} subject", msg.subject)
                found += leaks(f"{where} headers", json.dumps(msg.headers or {}))
                if name == STREAM_EXCEPTIONS:
                    event = json.loads(msg.data or b"{}")
                    found += leaks(f"{where} message", str(event.get("message", "")))
                elif name == STREAM_ADVISORIES:
                    found += leaks(where, msg.data.decode(errors="replace"))
    finally:
        await nc.close()
    return found


async def _all_messages(js: Any, stream: str, count: int) -> list[Any]:
    if not count:
        return []
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
    )
    sub = await js.pull_subscribe(">", stream=stream, config=config)
    got: list[Any] = []
    try:
        for _ in range(count // 100 + 20):  # bounded: a fetch brings up to 1000
            if len(got) >= count:
                break
            with contextlib.suppress(nats.errors.TimeoutError, asyncio.TimeoutError):
                got += await sub.fetch(1000, timeout=1)
    finally:
        await sub.unsubscribe()
    assert len(got) >= count, f"{stream}: read {len(got)} of {count} messages"
    return got


async def database_leaks(
    database_url: str, allowed: Mapping[str, str], schema_prefix: str = "carebus"
) -> tuple[list[str], set[str]]:
    """Every text, json, array and bytea column of the carebus schemas holding a canary in the
    clear, except the ``allowed`` columns (``schema.table.column`` → why it must); returns
    (leaks, allowed columns that did hold one)."""
    conn = await asyncpg.connect(database_url)
    found: list[str] = []
    held: set[str] = set()
    try:
        columns = await conn.fetch(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema LIKE $1 AND t.table_type = 'BASE TABLE' AND c.data_type IN "
            "('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'bytea')",
            schema_prefix + "%",
        )
        for column in columns:
            name = f"{column['table_schema']}.{column['table_name']}.{column['column_name']}"
            quoted = f'"{column["column_name"]}"'
            text = f"encode({quoted}, 'escape')" if column["data_type"] == "bytea" else (
                f"{quoted}::text"
            )  # fmt: skip
            hits = await conn.fetchval(
                f'SELECT count(*) FROM "{column["table_schema"]}"."{column["table_name"]}" '
                f"WHERE {text} ~ $1",
                CANARY_RE,
            )
            if hits and name in allowed:
                held.add(name)
            elif hits:
                found.append(f"{hits} row(s) of {name}")
    finally:
        await conn.close()
    return found, held


def log_leaks(folder: Path) -> tuple[list[str], int]:
    """Every ``*.log`` under ``folder`` (a service's stdout and stderr); (leaks, files)."""
    files = sorted(folder.glob("*.log"))
    found = [leak for p in files for leak in leaks(f"log {p.name}", p.read_text(errors="replace"))]
    return found, len(files)


def span_leaks(spans: Iterable[tuple[str, Any]]) -> list[str]:
    """Span names, attributes, events and status texts of every exported span."""
    found: list[str] = []
    for service, span in spans:
        parts = [span.name, span.status.message]
        parts += [f"{a.key}={a.value}" for a in span.attributes]
        for event in span.events:
            parts += [event.name, *(f"{a.key}={a.value}" for a in event.attributes)]
        found += leaks(f"span {span.name!r} of {service}", "\n".join(parts))
    return found


JOURNAL_DESCRIPTION = "carebus_erp_poster.journal_entry.description"
# Ledger journals by the intake their source came in by (the descriptions name the entity).
_INTAKES = {
    "siu": "Appointment F-CANARY-S%", "dft": "Charge CH-CANARY-D%", "csv": "Appointment CSV-%",
    "fhir": "Appointment [bc]%-%", "835": "Claim %",
}  # fmt: skip


async def journals_by_intake(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            intake: int(
                await conn.fetchval(
                    "SELECT count(*) FROM carebus_erp_poster.journal_entry "
                    "WHERE description SIMILAR TO $1",
                    pattern,
                )
            )
            for intake, pattern in _INTAKES.items()
        }
    finally:
        await conn.close()


async def journal_leaks(
    database_url: str, table: str = "carebus_erp_poster.journal_entry"
) -> list[str]:
    """Journal descriptions may name a claim (its CLP01, the canary account: ``Claim <id> …``)
    and nothing else that is a canary."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            f"SELECT description FROM {table} WHERE description ~ $1", CANARY_RE
        )
    finally:
        await conn.close()
    return [
        leak
        for row in rows
        for leak in leaks(
            "journal description", row["description"].replace(f"Claim {ACCOUNT} ", "")
        )
    ]


async def exception_records(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM carebus_exceptions.exception_record"))
    finally:
        await conn.close()


async def exception_count(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()
