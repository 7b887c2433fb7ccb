"""End to end: the official FHIR R4 ChargeItem (``ChargeItem-example.json``) through all five
services reaches the ledger. R4's ChargeItem names no location, and the charge rules book
revenue by location: the validator takes its performer's home department's location (the
mapper used to keep it as ``missing_dimension``)."""

from __future__ import annotations

import json

import httpx
import pytest

from carebus_contracts.subjects import STREAM_ERP
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
# What the example names: Practitioner/example performing 01510 (a CPT code too).
MASTER_DATA: MasterData = [
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


async def test_the_official_charge_item_posts_at_its_departments_location(
    stack: ServiceStack,
) -> None:
    endpoints = stack.endpoints
    await import_master_data(endpoints.validator_http, MASTER_DATA)
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    item = json.loads((SAMPLES / EXAMPLES_DIR / "ChargeItem-example.json").read_bytes())
    item["priceOverride"]["currency"] = "USD"  # the ledger's currency (the example's is EUR)
    async with httpx.AsyncClient(
        base_url=endpoints.billing_http, timeout=30, headers=auth.HEADERS
    ) as billing:
        reply = await billing.put("/fhir/ChargeItem/example", json=item, headers=HEADERS)
        assert reply.status_code in (200, 201), reply.text
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=60)

    assert await exception_reasons(endpoints.database_url) == []
    [journal] = [e for e in await stream_events(endpoints.nats_url, STREAM_ERP)
                 if e["event_type"] == "erp.journal.requested"]  # fmt: skip
    assert journal["mapping_rule"] == "charge-posted-self-pay"
    assert journal["posting_date"] == "2017-01-25"
    lines = journal["lines"]
    assert sum(line["amount"]["amount_minor"] for line in lines if line["side"] == "debit") == 4000
    revenue = next(line for line in lines if line["account"] == "4000")
    assert revenue["dimensions"]["location"] == "L-CARD"
    assert revenue["dimensions"]["department"] == "CARD"
    assert revenue["dimensions"]["cost_centre"] == "CC-CARD"
