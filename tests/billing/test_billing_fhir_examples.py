"""The official FHIR R4 ChargeItem, ClaimResponse and PaymentReconciliation examples
(``hl7.fhir.r4.examples`` 4.0.1) through the running adapter (real NATS and PostgreSQL):
each file as a create, then all of them in a batch and in a transaction Bundle; every outcome
is the committed one (``tests/fhir/official_example_expectations.tsv``)."""

from __future__ import annotations

from collections import Counter

from carebus_shared.devstack.nats_server import NatsServer
from tests.support.billing import running_adapter
from tests.support.fhir_examples import bundle_of, expectations

EXAMPLES = expectations("billing")


async def test_every_official_billing_example_has_its_committed_outcome(
    private_nats: NatsServer, database_url: str
) -> None:
    assert len(EXAMPLES) == 7
    counts: Counter[str] = Counter()
    async with running_adapter(private_nats.url, database_url) as run:
        for example in EXAMPLES:
            raw = example.file.read_bytes()
            before = len(await run.billing_events())
            reply = await run.http.post(f"/fhir/{example.resource_type}", content=raw)
            if example.accepted:
                assert reply.status_code == 201, (example.path, reply.json())
                events = (await run.billing_events())[before:]
                assert tuple(e.event_type for e in events) == example.event_types, example.path
                counts["accepted"] += 1
                continue
            assert reply.status_code == example.status, (example.path, reply.json())
            (issue,) = reply.json()["issue"]
            assert issue["details"]["coding"][0]["code"] == example.reason, example.path
            assert issue["expression"] == [example.expression]
            assert len(await run.billing_events()) == before
            counts["refused"] += 1
        records = await run.exception_records()
        refused = [e for e in EXAMPLES if not e.accepted]
        assert [(r["source"], r["reason"], r["path"]) for r in records] == [
            (f"fhir-{e.resource_type}", e.reason, e.expression) for e in refused
        ]
        assert [bytes(r["raw"]) for r in records] == [e.file.read_bytes() for e in refused]
    print(f"\n[official R4 examples] billing: {dict(counts)}")


async def test_the_official_examples_in_a_batch_and_a_transaction(
    private_nats: NatsServer, database_url: str
) -> None:
    """The package has no transaction or batch Bundle carrying a billing resource: the
    examples are put in one, unchanged, each as a create. The batch stores the accepted ones
    and answers each refused one; the transaction, holding refused ones, stores nothing."""
    async with running_adapter(private_nats.url, database_url) as run:
        transaction = await run.http.post("/fhir", content=bundle_of("transaction", EXAMPLES))
        assert transaction.status_code == 422, transaction.json()
        issues = transaction.json()["issue"]
        refused = [(n, e) for n, e in enumerate(EXAMPLES) if not e.accepted]
        assert [i["details"]["coding"][0]["code"] for i in issues] == [e.reason for _, e in refused]
        assert await run.billing_events() == []

        batch = await run.http.post("/fhir", content=bundle_of("batch", EXAMPLES))
        assert batch.status_code == 200, batch.json()
        responses = [entry["response"] for entry in batch.json()["entry"]]
        for example, response in zip(EXAMPLES, responses, strict=True):
            if example.accepted:
                assert response["status"] == "200 OK", (example.path, response)
                assert response["location"].startswith(f"{example.resource_type}/")
            else:
                assert response["status"] == f"{example.status} Unprocessable Entity"
                (issue,) = response["outcome"]["issue"]
                assert issue["details"]["coding"][0]["code"] == example.reason
        kinds = [e.event_type for e in await run.billing_events()]
        assert kinds == [t for e in EXAMPLES if e.accepted for t in e.event_types]
        records = await run.exception_records()
        assert [(r["source"], r["reason"]) for r in records] == [
            ("fhir-Bundle", refused[0][1].reason),
            ("fhir-Bundle", refused[0][1].reason),
        ]
