"""Every DFT, 835 and FHIR billing sample under the samples folder, through the running adapter
(real MLLP socket, HTTP, NATS and PostgreSQL): accepted, or rejected with a specific reason
that names where the problem is. Counts per source are printed (run with -s)."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from carebus_contracts import billing as b
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.billing import (
    FHIR_EXPECTED,
    ack_code,
    dft_samples,
    mllp_exchange,
    remittance_samples,
    running_adapter,
)
from tests.support.x12_repaired_samples import REPAIRED
from tests.support.x12_sample_expectations import ACCEPTED, EXPECTED_REJECTIONS

# name → ACK code and, when rejected, the HL7 error location.
DFT_EXPECTED = {
    "DFT-P03-01.hl7": ("AA", None),
    "DFT-P03-02.hl7": ("AA", None),
    "DFT-P11-01.hl7": ("AA", None),
    "DFT-P11-02.hl7": ("AA", None),
    # Allscripts FT1 carries neither FT1-11 nor FT1-12: a charge without an amount.
    "DFT_P03_allscripts_healthmatics.hl7": ("AE", "FT1-11"),
}


def _report(source: str, outcomes: Counter[str]) -> None:
    print(f"\n[billing samples] {source}: " + ", ".join(f"{k}={v}" for k, v in outcomes.items()))


async def test_every_dft_sample_over_mllp(
    samples_dir: Path, private_nats: NatsServer, database_url: str
) -> None:
    files = dft_samples(samples_dir)
    assert sorted(p.name for p in files) == sorted(DFT_EXPECTED)
    outcomes: Counter[str] = Counter()
    async with running_adapter(private_nats.url, database_url) as run:
        for path in files:
            (ack,) = await mllp_exchange(run.mllp_port, path.read_bytes())
            code, _ = DFT_EXPECTED[path.name]
            assert ack_code(ack) == code, (path.name, ack)
            outcomes["accepted" if code == "AA" else "rejected"] += 1
        records = await run.exception_records()
        expected_paths = [where for code, where in DFT_EXPECTED.values() if code != "AA"]
        assert [r["path"] for r in records] == expected_paths
        assert [r["reason"] for r in records] == ["required_field_missing"]
        events = await run.billing_events()
        # The four Microsoft samples reuse sender GHHSFacility/IMMAPP and control id MSG00001:
        # for carebus that is one message re-sent, so JetStream keeps the first's two charges.
        assert [type(e) for e in events] == [b.ChargePosted, b.ChargePosted]
        assert {e.event_id for e in events} == {
            "hl7:IMMAPP^GHHSFacility:MSG00001:1",
            "hl7:IMMAPP^GHHSFacility:MSG00001:2",
        }
    _report("hl7v2 DFT", outcomes)


def _issue_keys(body: dict[str, object]) -> frozenset[str]:
    issues = body["issues"]
    assert isinstance(issues, list)
    return frozenset(f"{i['reason']}@{i['element']}" for i in issues)


async def test_every_835_sample_over_http(
    samples_dir: Path, private_nats: NatsServer, database_url: str
) -> None:
    files = remittance_samples(samples_dir)
    assert len(files) == 6
    outcomes: Counter[str] = Counter()
    async with running_adapter(private_nats.url, database_url) as run:
        declared_total = 0
        for path in files:
            name = str(path.relative_to(samples_dir))
            response = await run.http.post("/v1/remittances", content=path.read_bytes())
            body = response.json()
            if name in ACCEPTED:
                assert response.status_code == 201, body
                assert body["claims"] == sum(claims for _, claims in ACCEPTED[name])
                declared_total += sum(payment for payment, _ in ACCEPTED[name])
                outcomes["accepted"] += 1
            else:
                assert response.status_code == 422, body
                assert response.headers["content-type"].startswith("application/problem+json")
                assert _issue_keys(body) == EXPECTED_REJECTIONS[name]
                assert all(i["segment"] and i["segment_position"] for i in body["issues"])
                outcomes["rejected"] += 1
        # Rejected files are kept whole; nothing of them reached the stream.
        records = await run.exception_records()
        kept = {bytes(r["raw"]) for r in records if r["source"] == "x12-835"}
        assert kept == {
            p.read_bytes() for p in files if str(p.relative_to(samples_dir)) not in ACCEPTED
        }
        events = await run.billing_events()
        assert _posted_total(events) == declared_total
    _report("x12 835", outcomes)


def _posted_total(events: list[object]) -> int:
    """Payments posted less provider-level adjustments, read back from the stream."""
    payments = sum(e.amount.amount_minor for e in events if isinstance(e, b.PaymentPosted))
    provider = sum(
        e.amount.amount_minor
        for e in events
        if isinstance(e, b.AdjustmentPosted) and e.scope is b.AdjustmentScope.PROVIDER
    )
    return payments - provider


async def test_repaired_835_samples_post_their_own_totals(
    private_nats: NatsServer, database_url: str, samples_dir: Path
) -> None:
    """The broken samples with only their named defects fixed are posted, and the BILLING
    stream's payments less provider adjustments equal each file's BPR02, claim by claim."""
    async with running_adapter(private_nats.url, database_url) as run:
        declared = 0
        for name, repair in sorted(REPAIRED.items()):
            response = await run.http.post("/v1/remittances", content=repair().encode())
            assert response.status_code == 201, (name, response.json())
            declared += response.json()["payment_total_minor"]
        events = await run.billing_events()
        assert _posted_total(events) == declared
        paid_by_claim = Counter[str]()
        for event in events:
            if isinstance(event, b.PaymentPosted) and event.claim_id:
                paid_by_claim[event.claim_id] += event.amount.amount_minor
        adjudicated = Counter[str]()
        for event in events:
            if isinstance(event, b.ClaimAdjudicatedV2):
                adjudicated[event.claim_id] += event.totals.paid.amount_minor
        assert +paid_by_claim == +adjudicated
        statuses = {e.status for e in events if isinstance(e, b.ClaimAdjudicatedV2)}
        assert b.ClaimStatus.REVERSED in statuses  # the pyx12 CLP02=22 claims


def _first_identifier(resource: dict[str, Any]) -> str | None:
    identifiers = resource.get("identifier") or [{}]
    return identifiers[0].get("value")


def _code(resource: dict[str, Any]) -> str:
    return str(resource["code"]["coding"][0]["code"])


def _price(resource: dict[str, Any]) -> dict[str, Any]:
    price = resource["priceOverride"]
    assert isinstance(price, dict)
    return price


def fhir_charge_items(samples_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((samples_dir / FHIR_EXPECTED).rglob("*.json")):
        bundle = json.loads(path.read_text())
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] in ("ChargeItem", "ClaimResponse", "PaymentReconciliation"):
                found.append((path.name, resource))
    return found


async def test_every_fhir_billing_sample_over_http(
    samples_dir: Path, private_nats: NatsServer, database_url: str
) -> None:
    resources = fhir_charge_items(samples_dir)
    assert len(resources) == 8  # two ChargeItems in each DFT bundle; no other billing resource
    outcomes: Counter[str] = Counter()
    async with running_adapter(private_nats.url, database_url) as run:
        for _, resource in resources:
            # The converter's bundles PUT each resource under its id: an update.
            url = f"/fhir/{resource['resourceType']}/{resource['id']}"
            response = await run.http.put(url, content=json.dumps(resource))
            assert response.status_code == 200, response.json()
            assert response.json()["id"] == resource["id"]
            outcomes["accepted"] += 1
        events = await run.billing_events()
        charges = [e for e in events if isinstance(e, b.ChargePosted)]
        # Bundles repeat ChargeItems that differ only in elements carebus does not read
        # (service, supportingInformation): same mapped content, same event id, kept once.
        assert len(charges) <= len(resources)
        expected = {
            (
                str(r["id"]),
                _first_identifier(r) or str(r["id"]),
                _code(r),
                int(Decimal(str(_price(r)["value"])) * 100),
            )
            for _, r in resources
        }
        posted = {
            (
                c.event_id.split("/")[1].split(":")[0],
                c.charge.charge_id,
                c.charge.service_code,
                c.charge.amount.amount_minor,
            )
            for c in charges
        }
        assert posted == expected
        assert await run.exception_records() == []
    _report("fhir-r4 ChargeItem", outcomes)


async def test_every_fhir_sample_bundle_through_the_bundle_endpoint(
    samples_dir: Path, private_nats: NatsServer, database_url: str
) -> None:
    """The converter's batch Bundles as they are: a DFT conversion's ChargeItems are stored
    (the same events as one by one), every other Bundle carries nothing for billing."""
    files = sorted((samples_dir / FHIR_EXPECTED).rglob("*-expected.json"))
    assert len(files) == 24
    outcomes: Counter[str] = Counter()
    async with running_adapter(private_nats.url, database_url) as run:
        for path in files:
            response = await run.http.post("/fhir", content=path.read_bytes())
            if path.parent.name.startswith("DFT_"):
                assert response.status_code == 200, (path.name, response.json())
                answer = response.json()
                assert answer["type"] == "batch-response"
                located = [e["response"].get("location") for e in answer["entry"]]
                assert len([loc for loc in located if loc]) == 2, path.name
                outcomes["accepted"] += 1
                continue
            assert response.status_code == 422, path.name
            (issue,) = response.json()["issue"]
            assert issue["details"]["coding"][0]["code"] == "no_billing_resource"
            outcomes["rejected (no billing resource: scheduling)"] += 1
        ids = {e.event_id for e in await run.billing_events()}
        singles = {f"fhir:ChargeItem/{r['id']}" for _, r in fhir_charge_items(samples_dir)}
        assert {i.rsplit(":", 1)[0] for i in ids} == singles
        records = await run.exception_records()
        assert [r["reason"] for r in records] == ["no_billing_resource"] * 20
    assert outcomes == Counter({"accepted": 4, "rejected (no billing resource: scheduling)": 20})
    _report("fhir-r4 Bundle", outcomes)
