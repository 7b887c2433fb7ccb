"""End to end: the official FHIR R4 ChargeItem (``ChargeItem-example.json``) through all five
services reaches the ledger. R4's ChargeItem names no location, and the charge rules book
revenue by location: the validator takes its performer's home department's location (the
mapper used to keep it as ``missing_dimension``)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import pytest

from carebus_contracts.subjects import STREAM_ERP
from carebus_scenario.observe import wait_quiet
from carebus_scenario.stack import ServiceStack
from tests.support import auth
from tests.support.fhir_examples import EXAMPLES_DIR
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.slow

SITE = "SITE01"
HEADERS = {"Content-Type": "application/fhir+json", "X-Carebus-Site": SITE}
# What the example names: Practitioner/example performing 01510 (a CPT code too).
MASTER_DATA: list[tuple[str, list[dict[str, Any]]]] = [
    ("cost-centres", [{"cost_centre_id": "CC-CARD", "name": "Cardiology"}]),
    ("locations", [{"location_id": "L-CARD", "name": "Heart centre", "place_of_service": "22",
                    "time_zone": "Europe/Berlin", "cost_centre_id": "CC-CARD"}]),
    ("departments", [{"department_id": "CARD", "name": "Cardiology",
                      "cost_centre_id": "CC-CARD", "location_id": "L-CARD"}]),
    ("providers", [{"provider_id": "example", "npi": "1234567893", "name": "A. Cardiologist",
                    "department_id": "CARD"}]),
    ("services", [{"service_code": "01510", "code_system": "CPT",
                   "description": "Observation after coronary angiography"}]),
]  # fmt: skip


async def _journals(nats_url: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(STREAM_ERP)).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            event = msgspec.json.decode((await js.get_msg(STREAM_ERP, seq)).data or b"{}")
            if event["event_type"] == "erp.journal.requested":
                found.append(event)
        return found
    finally:
        await nc.close()


async def _exception_reasons(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT reason FROM carebus_exceptions.exception_record")
    finally:
        await conn.close()
    return [r["reason"] for r in rows]


async def test_the_official_charge_item_posts_at_its_departments_location(
    stack: ServiceStack,
) -> None:
    endpoints = stack.endpoints
    async with httpx.AsyncClient(
        base_url=endpoints.validator_http, timeout=30, headers=auth.HEADERS
    ) as validator:
        for collection, records in MASTER_DATA:
            reply = await validator.post(f"/v1/{collection}/import", json=records)
            assert reply.status_code == 200, reply.text
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    item = json.loads((SAMPLES / EXAMPLES_DIR / "ChargeItem-example.json").read_bytes())
    item["priceOverride"]["currency"] = "USD"  # the ledger's currency (the example's is EUR)
    async with httpx.AsyncClient(
        base_url=endpoints.billing_http, timeout=30, headers=auth.HEADERS
    ) as billing:
        reply = await billing.put("/fhir/ChargeItem/example", json=item, headers=HEADERS)
        assert reply.status_code in (200, 201), reply.text
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    assert await _exception_reasons(endpoints.database_url) == []
    [journal] = await _journals(endpoints.nats_url)
    assert journal["mapping_rule"] == "charge-posted-self-pay"
    assert journal["posting_date"] == "2017-01-25"
    lines = journal["lines"]
    assert sum(line["amount"]["amount_minor"] for line in lines if line["side"] == "debit") == 4000
    revenue = next(line for line in lines if line["account"] == "4000")
    assert revenue["dimensions"]["location"] == "L-CARD"
    assert revenue["dimensions"]["department"] == "CARD"
    assert revenue["dimensions"]["cost_centre"] == "CC-CARD"
