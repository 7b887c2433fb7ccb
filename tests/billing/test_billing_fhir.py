"""FHIR R4 ChargeItem, ClaimResponse and PaymentReconciliation over HTTP, create and update,
into a real JetStream; refused resources answer with an OperationOutcome and are kept."""

from __future__ import annotations

import copy
import json
from typing import Any

from carebus_contracts import billing as b
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.billing import CHARGE_ITEM, running_adapter

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


def _bundle(kind: str, *entries: dict[str, Any]) -> bytes:
    return _json({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def _put(resource: dict[str, Any], resource_id: str) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource_id}"
    return {"resource": resource | {"id": resource_id}, "request": {"method": "PUT", "url": url}}


PATIENT = {"resource": {"resourceType": "Patient", "id": "MRN-9"}}


async def test_a_transaction_bundle_is_stored_whole_and_answered_per_entry(
    private_nats: NatsServer, database_url: str
) -> None:
    raw = _bundle(
        "transaction", PATIENT, _post(CHARGE_ITEM), _put(CLAIM_RESPONSE, "cr-1"),
        _post(RECONCILIATION),
    )  # fmt: skip
    async with running_adapter(private_nats.url, database_url) as run:
        response = await run.http.post("/fhir", content=raw)
        assert response.status_code == 200, response.json()
        assert response.headers["content-type"].startswith("application/fhir+json")
        answer = response.json()
        assert answer["resourceType"] == "Bundle"
        assert answer["type"] == "transaction-response"
        patient, charge, claim, recon = (e["response"] for e in answer["entry"])
        assert patient["status"] == "200 OK"
        assert patient["outcome"]["issue"][0]["severity"] == "information"
        assert charge["status"] == "200 OK"
        assert charge["location"].startswith("ChargeItem/")
        assert claim["location"] == "ClaimResponse/cr-1"
        assert recon["location"].startswith("PaymentReconciliation/")
        kinds = [type(e) for e in await run.billing_events()]
        assert kinds == [b.ChargePosted, b.ClaimAdjudicatedV2, b.PaymentPosted, b.AdjustmentPosted]
        # The same events, one by one, get the same ids: a resource is the same resource
        # whether it came alone or in a Bundle.
        alone = await run.http.post("/fhir/ChargeItem", content=_json(CHARGE_ITEM))
        assert f"ChargeItem/{alone.json()['id']}" == charge["location"]
        assert len(await run.billing_events()) == 4
        assert await run.exception_records() == []


async def test_a_transaction_with_a_bad_entry_stores_nothing_and_is_kept(
    private_nats: NatsServer, database_url: str
) -> None:
    no_subject = {k: v for k, v in CHARGE_ITEM.items() if k != "subject"}
    raw = _bundle("transaction", _post(CLAIM_RESPONSE), _post(no_subject))
    async with running_adapter(private_nats.url, database_url) as run:
        response = await run.http.post("/fhir", content=raw)
        assert response.status_code == 422, response.json()
        (issue,) = response.json()["issue"]
        assert issue["expression"] == ["Bundle.entry[1].resource.subject"]
        assert issue["details"]["coding"][0]["code"] == "missing_reference"
        assert await run.billing_events() == []
        (record,) = await run.exception_records()
        assert (record["source"], record["reason"]) == ("fhir-Bundle", "missing_reference")
        assert record["path"] == "Bundle.entry[1].resource.subject"
        assert bytes(record["raw"]) == raw


async def test_a_batch_stores_its_good_entries_and_answers_the_bad_one(
    private_nats: NatsServer, database_url: str
) -> None:
    queued = CLAIM_RESPONSE | {"outcome": "queued"}
    raw = _bundle("batch", _post(CHARGE_ITEM), _post(queued), PATIENT)
    async with running_adapter(private_nats.url, database_url) as run:
        response = await run.http.post("/fhir", content=raw)
        assert response.status_code == 200, response.json()
        answer = response.json()
        assert answer["type"] == "batch-response"
        charge, claim, _ = (e["response"] for e in answer["entry"])
        assert charge["status"] == "200 OK"
        assert claim["status"] == "422 Unprocessable Entity"
        (issue,) = claim["outcome"]["issue"]
        assert issue["expression"] == ["Bundle.entry[1].resource.outcome"]
        assert [type(e) for e in await run.billing_events()] == [b.ChargePosted]
        (record,) = await run.exception_records()
        assert (record["source"], record["reason"]) == ("fhir-Bundle", "not_adjudicated")

        # Fixed and re-driven: the charge again is a duplicate, the claim is new.
        fixed = _bundle("batch", _post(CHARGE_ITEM), _post(CLAIM_RESPONSE), PATIENT)
        redriven = await run.http.post(f"/v1/exceptions/{record['id']}/redrive", content=fixed)
        assert redriven.status_code == 200, redriven.json()
        assert len(redriven.json()["event_ids"]) == 2
        kinds = [type(e) for e in await run.billing_events()]
        assert kinds == [b.ChargePosted, b.ClaimAdjudicatedV2]


async def test_bundles_refused_as_a_whole(private_nats: NatsServer, database_url: str) -> None:
    delete = {"resource": CHARGE_ITEM, "request": {"method": "DELETE", "url": "ChargeItem/x"}}
    cases: list[tuple[bytes, int, str, str | None]] = [
        (_bundle("batch", _post({k: v for k, v in CHARGE_ITEM.items() if k != "code"})), 422,
         "missing_reference", "Bundle.entry[0].resource.code"),
        (_bundle("batch", PATIENT), 422, "no_billing_resource", "Bundle.entry"),
        (_bundle("searchset", _post(CHARGE_ITEM)), 422, "unsupported_bundle_type", "Bundle.type"),
        (_bundle("transaction", delete), 422, "unsupported_method",
         "Bundle.entry[0].request.method"),
        (_bundle("transaction", {"resource": CHARGE_ITEM}), 422, "missing_request",
         "Bundle.entry[0].request"),
        (_json(CHARGE_ITEM), 400, "wrong_resource_type", "resourceType"),
        (b"{not json", 400, "invalid_json", None),
    ]  # fmt: skip
    async with running_adapter(private_nats.url, database_url) as run:
        for raw, status, reason, expression in cases:
            response = await run.http.post("/fhir", content=raw)
            assert response.status_code == status, (reason, response.json())
            (issue,) = response.json()["issue"]
            assert issue["details"]["coding"][0]["code"] == reason
            assert issue.get("expression") == ([expression] if expression else None)
        assert await run.billing_events() == []
        records = await run.exception_records()
        assert [r["reason"] for r in records] == [reason for _, _, reason, _ in cases]
        assert {r["source"] for r in records} == {"fhir-Bundle"}
