"""FHIR R4 ChargeItem, ClaimResponse and PaymentReconciliation over HTTP, create and update,
into a real JetStream; refused resources answer with an OperationOutcome and are kept."""

from __future__ import annotations

import copy
import json
from typing import Any

from carebus_contracts import billing as b
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.billing import running_adapter

CHARGE_ITEM: dict[str, Any] = {
    "resourceType": "ChargeItem",
    "identifier": [{"value": "CH-77"}],
    "status": "billable",
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
    "subject": {"reference": "Patient/MRN-9"},
    "context": {"reference": "Encounter/ENC-1"},
    "occurrenceDateTime": "2025-03-10T09:15:00-06:00",
    "performer": [{"actor": {"reference": "Practitioner/DR-1"}}],
    "costCenter": {"reference": "Organization/CARDIO"},
    "quantity": {"value": 2},
    "priceOverride": {"value": 150.10, "currency": "USD"},
}
CLAIM_RESPONSE: dict[str, Any] = {
    "resourceType": "ClaimResponse",
    "identifier": [{"value": "ICN-555"}],
    "status": "active",
    "outcome": "complete",
    "created": "2025-04-01",
    "insurer": {"identifier": {"value": "BCBS"}},
    "request": {"reference": "Claim/CLM-3001"},
    "adjudication": [
        {
            "category": {"coding": [{"code": "CO"}]},
            "reason": {"coding": [{"code": "45"}]},
            "amount": {"value": 25.00},
        }
    ],
    "total": [
        {"category": {"coding": [{"code": "submitted"}]}, "amount": {"value": 125.00}},
        {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 80.00}},
        {"category": {"coding": [{"code": "copay"}]}, "amount": {"value": 20.00}},
    ],
    "payment": {"identifier": {"value": "EFT-1"}},
}
RECONCILIATION: dict[str, Any] = {
    "resourceType": "PaymentReconciliation",
    "identifier": [{"value": "PR-1"}],
    "status": "active",
    "created": "2025-04-02",
    "paymentIssuer": {"identifier": {"value": "BCBS"}},
    "paymentDate": "2025-04-02",
    "paymentAmount": {"value": 75.50, "currency": "USD"},
    "paymentIdentifier": {"value": "EFT-1"},
    "detail": [
        {"type": {"coding": [{"code": "payment"}]}, "request": {"reference": "Claim/CLM-3001"},
         "amount": {"value": 80.00}},
        {"type": {"coding": [{"code": "adjustment"}]}, "amount": {"value": -4.50}},
    ],
}  # fmt: skip


def _json(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


async def test_create_and_update_each_resource(private_nats: NatsServer, database_url: str) -> None:
    async with running_adapter(private_nats.url, database_url, default_site="S1") as run:
        created = await run.http.post("/fhir/ChargeItem", content=_json(CHARGE_ITEM))
        assert created.status_code == 201, created.json()
        resource_id = created.json()["id"]
        assert created.headers["location"] == f"/fhir/ChargeItem/{resource_id}"
        # A retried create is the same resource: same id, no second charge.
        retried = await run.http.post("/fhir/ChargeItem", content=_json(CHARGE_ITEM))
        assert retried.json()["id"] == resource_id

        voided = copy.deepcopy(CHARGE_ITEM) | {"id": resource_id, "status": "entered-in-error"}
        updated = await run.http.put(f"/fhir/ChargeItem/{resource_id}", content=_json(voided))
        assert updated.status_code == 200, updated.json()

        claim = await run.http.post("/fhir/ClaimResponse", content=_json(CLAIM_RESPONSE))
        assert claim.status_code == 201, claim.json()
        recon = await run.http.post("/fhir/PaymentReconciliation", content=_json(RECONCILIATION))
        assert recon.status_code == 201, recon.json()

        events = await run.billing_events()
        posted, reversed_, adjudicated, payment, adjustment = events
        assert isinstance(posted, b.ChargePosted)
        assert posted.charge.charge_id == "CH-77"
        assert (posted.charge.units, posted.charge.amount.amount_minor) == (2, 15010)
        assert (posted.charge.patient_ref, posted.charge.encounter_id) == ("MRN-9", "ENC-1")
        assert posted.site == "S1"
        assert isinstance(reversed_, b.ChargeReversed)
        assert reversed_.reversed_charge_id == "CH-77"
        assert reversed_.entity_version >= posted.entity_version
        assert isinstance(adjudicated, b.ClaimAdjudicatedV2)
        assert adjudicated.claim_id == "CLM-3001"
        assert (adjudicated.payer_code, adjudicated.payer_claim_id) == ("BCBS", "ICN-555")
        assert adjudicated.totals.billed.amount_minor == 12500
        assert adjudicated.totals.paid.amount_minor == 8000
        assert adjudicated.totals.patient_responsibility is not None
        assert adjudicated.totals.patient_responsibility.amount_minor == 2000
        assert [(a.group_code, a.reason_code) for a in adjudicated.claim_adjustments] == [
            (b.CarcGroup.CONTRACTUAL, "45")
        ]
        assert isinstance(payment, b.PaymentPosted)
        assert (payment.claim_id, payment.amount.amount_minor) == ("CLM-3001", 8000)
        assert isinstance(adjustment, b.AdjustmentPosted)
        assert adjustment.scope is b.AdjustmentScope.PROVIDER
        # Payments less provider-level adjustments equal the paymentAmount.
        assert payment.amount.amount_minor - adjustment.amount.amount_minor == 7550


async def test_refused_resources_answer_with_operation_outcome(
    private_nats: NatsServer, database_url: str
) -> None:
    no_subject = {k: v for k, v in CHARGE_ITEM.items() if k != "subject"}
    three_decimals = copy.deepcopy(CHARGE_ITEM)
    three_decimals["priceOverride"]["value"] = 1.005
    unbalanced = copy.deepcopy(RECONCILIATION)
    unbalanced["paymentAmount"]["value"] = 80.00
    cases: list[tuple[str, str, bytes, int, str | None]] = [
        ("POST", "/fhir/ChargeItem", _json(no_subject), 422, "ChargeItem.subject"),
        ("POST", "/fhir/ChargeItem", _json(three_decimals), 422, "ChargeItem.priceOverride.value"),
        ("POST", "/fhir/ChargeItem", b"{not json", 400, None),
        ("POST", "/fhir/ChargeItem", _json(CLAIM_RESPONSE), 400, "ChargeItem.resourceType"),
        (
            "PUT",
            "/fhir/ChargeItem/other-id",
            _json(CHARGE_ITEM | {"id": "this-id"}),
            400,
            "ChargeItem.id",
        ),
        ("POST", "/fhir/ChargeItem", _json(CHARGE_ITEM | {"quantity": {"value": "x"}}), 422,
         "ChargeItem.quantity.value"),
        ("POST", "/fhir/PaymentReconciliation", _json(unbalanced), 422,
         "PaymentReconciliation.detail"),
        ("POST", "/fhir/ClaimResponse", _json(CLAIM_RESPONSE | {"outcome": "queued"}), 422,
         "ClaimResponse.outcome"),
        ("POST", "/fhir/Patient", b"{}", 404, None),
    ]  # fmt: skip
    async with running_adapter(private_nats.url, database_url) as run:
        for method, url, body, status, expression in cases:
            response = await run.http.request(method, url, content=body)
            assert response.status_code == status, (url, response.json())
            assert response.headers["content-type"].startswith("application/fhir+json")
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome"
            (issue,) = outcome["issue"]
            assert issue["severity"] == "error"
            assert issue["diagnostics"]
            if expression:
                assert issue["expression"] == [expression], issue
        assert await run.billing_events() == []
        records = await run.exception_records()
        # Everything but the unknown resource type is kept for fix and re-drive.
        assert len(records) == len(cases) - 1
        assert all(r["content_type"] == "application/fhir+json" for r in records)
