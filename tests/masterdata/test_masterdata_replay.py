"""A replay into the running validator of events written under older contract versions: the
copies go through the registry's decoding and upcasters like any input, so what comes out
is the current contract (billing.payment.posted 1.0 read as 1.2, billing.claim.adjudicated
1.0 upcast to 2.1)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from nats.js import JetStreamContext

import carebus_contracts
from carebus_contracts.billing import ClaimAdjudicatedV2, PaymentPosted
from carebus_contracts.validated import Validated
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.jetstream.window import Window
from carebus_shared.replay import records, use_case
from carebus_shared.replay.progress import Lines
from tests.support.masterdata import Collector, charge, eventually, publish, unique

EXAMPLES = Path(carebus_contracts.__file__).parents[2] / "examples"


def _old(event_type: str, site: str, payer: str, claim: str) -> tuple[str, bytes, dict[str, str]]:
    """The golden v1.0 example of ``event_type``, made this test's own, as it was published
    then: its subject, its bytes and its headers."""
    body: dict[str, Any] = json.loads((EXAMPLES / event_type / "v1.0" / "basic.json").read_text())
    key = unique("K-")
    body.update(event_id=f"evt-{key}", site=site, entity_key=key, payer_code=payer)
    body.update(claim_id=claim)
    if "payment_id" in body:
        body["payment_id"] = key
    domain, entity, name = event_type.split(".")
    headers = {
        "Nats-Msg-Id": body["event_id"],
        "Carebus-Event-Type": event_type,
        "Carebus-Schema-Version": "1.0",
    }
    return f"{domain}.{entity}.{name}.v1.{site}", json.dumps(body).encode(), headers


async def _parked(api: httpx.AsyncClient, site: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/quarantine", params={"site": site})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_events_of_older_contract_versions_replayed_into_the_validator_are_upcast(
    api: httpx.AsyncClient, md_js: JetStreamContext, md_db: asyncpg.Connection
) -> None:
    await migrate(md_db, records.OWNER, load_migrations(records.PACKAGE))
    site, payer, claim = unique("S"), unique("PY-"), unique("V")
    old = [
        _old("billing.payment.posted", site, payer, claim),
        _old("billing.claim.adjudicated", site, payer, claim),
    ]
    async with Collector(md_js, "VALIDATED", f"validated.*.*.*.{site}.*") as validated:
        seqs = [(await md_js.publish(s, data, headers=h)).seq for s, data, h in old]
        # The payer is unknown, so both are parked, and a person discards them by mistake.
        parked = await eventually(lambda: _parked_n(api, site, 2), "both events parked")
        for item in parked:
            response = await api.post(f"/v1/quarantine/{item['id']}/discard", json={"note": "x"})
            assert response.status_code == 200, response.text
        payer_body = {"payer_id": payer, "name": "Acme", "payer_class": "commercial"}
        assert (await api.post("/v1/payers", json=payer_body)).status_code == 201
        # The claim's charge, so that the two are booked (to its site) once replayed.
        service = {"service_code": "99213", "code_system": "CPT", "description": "Office visit"}
        assert (await api.post("/v1/services", json=service)).status_code == 201
        await publish(
            md_js,
            [
                charge(
                    site=site, source="billing", charge_id=unique("CH-"), service_code="99213",
                    payer_code=payer, encounter_id=claim,
                )
            ],
        )  # fmt: skip
        await validated.until(1)

        # A replay of the two, once the payer is known, re-drives them.
        window = Window(from_seq=seqs[0], to_seq=seqs[1])
        planned = await use_case.plan(md_js, use_case.Request("BILLING", "validator", window))
        result = await use_case.replay(md_js, md_db, planned, "steward", Lines(io.StringIO()))
        assert (result.outcome, result.tally.republished) == ("completed", 2)

        events = await validated.until(3)
    by_type = {type(e.original): e for e in events if isinstance(e, Validated)}
    payment, claim = by_type[PaymentPosted], by_type[ClaimAdjudicatedV2]
    assert payment.original.schema_version == "1.0"
    assert payment.original.method is None  # the field 1.1 added, at its default
    assert payment.enrichment.payer_id == payer
    assert claim.original.schema_version == "2.1"  # upcast to the current v2
    assert claim.original.totals.paid.amount_minor == 8000  # v1's `paid`, moved by the upcaster
    assert claim.original.claim_adjustments[0].reason_code == "45"
    assert claim.enrichment.payer_id == payer


async def _parked_n(api: httpx.AsyncClient, site: str, n: int) -> list[dict[str, Any]] | None:
    items = await _parked(api, site)
    return items if len(items) == n else None
