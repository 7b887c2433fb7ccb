"""End to end through the real service process (its consumers on the provisioned MAPPER
durables, one per partition), with a real NATS and PostgreSQL: validated events in, journals
on the ERP stream, mapping exceptions in the exception store, and the preview API."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import decode_as, encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.validated import Enrichment, Validated
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY, partitions_of
from tests.support import auth
from tests.support.mapper import (
    ENRICHMENT,
    appointment,
    balanced_per_currency,
    charge,
    claim,
    copy_default_rules,
    fresh_database,
    payment,
    validate,
)
from tests.support.service_process import ServiceProcess, http_get

pytestmark = pytest.mark.slow


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=auth.HEADERS)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
async def mapper_service(
    private_nats: NatsServer, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[ServiceProcess, JetStreamContext, str]]:
    # The default rules minus claims.toml, so that a claim is an event no rule matches.
    rules = copy_default_rules(tmp_path / "rules")
    (rules / "claims.toml").unlink()
    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    await provision(js, TOPOLOGY)
    async with fresh_database(database_url) as db_url:
        port = free_port()
        env = {
            "NATS_URL": private_nats.url,
            "DATABASE_URL": db_url,
            "CAREBUS_MAPPER_HTTP_PORT": str(port),
            "CAREBUS_MAPPER_RULES_DIR": str(rules),
            "CAREBUS_MAPPER_MAX_WAIT_S": "0.05",
            "CAREBUS_SHUTDOWN_GRACE_S": "5",
        }
        argv = [sys.executable, "-m", "carebus_mapper.entrypoints.cli", "serve"]
        process = ServiceProcess(argv, env, port, tmp_path / "mapper.log").start()
        try:
            await asyncio.to_thread(process.wait_ready, 60)
            yield process, js, db_url
        finally:
            process.kill()
            await nc.close()


async def _wait_for(predicate: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _journals(js: JetStreamContext) -> list[JournalEntryRequested]:
    info = await js.stream_info("ERP")
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("ERP", seq)
        out.append(decode_as(JournalEntryRequested, msg.data))
    return out


async def test_validated_events_become_journals_and_failures_exceptions(
    mapper_service: tuple[ServiceProcess, JetStreamContext, str],
) -> None:
    process, js, db_url = mapper_service
    no_cost_centre = Enrichment(**{**_fields(ENRICHMENT), "cost_centre": None})
    charge_event = validate(charge("CH-1", 12500))
    events: list[Validated[Any]] = [
        validate(appointment(s.AppointmentBooked, "A1", 1)),
        validate(appointment(s.AppointmentCancelled, "A1", 3)),
        validate(appointment(s.AppointmentRescheduled, "A1", 2)),  # arrives late: stale
        charge_event,
        # The same charge re-validated (a new validated id): the same journal, not a second.
        validate(charge("CH-1", 12500), validated_id="val-again"),
        validate(charge("CH-1", 12500, reversed_=True, version=2)),
        validate(payment("PAY-1", 8000)),
        validate(claim("CLM-1")),  # no rule for claims in this rule set
        validate(charge("CH-2", 5000), no_cost_centre),  # revenue needs a cost centre
    ]
    for event in events:
        await js.publish(subject_for(event), encode(event), headers=headers_for(event))

    async def drained() -> bool:  # every partition of the stage
        infos = [await js.consumer_info("VALIDATED", d) for d in partitions_of(MAPPER)]
        return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

    await _wait_for(drained, "the mapper to consume every validated event")
    journals = await _journals(js)
    assert sorted(j.mapping_rule or "" for j in journals) == [
        "appointment-booked",
        "appointment-cancelled-released",
        "charge-posted",
        "charge-reversed",
        "payment-posted",
    ]
    for journal in journals:
        assert balanced_per_currency(journal)
        assert journal.rule_set_version == "2025.03.2"
        assert journal.company == "CAREBUS-HEALTH"
    posted = next(j for j in journals if j.mapping_rule == "charge-posted")
    assert posted.source_event_ids == ("CH-1-post",)
    assert posted.causation_id == charge_event.event_id

    conn = await asyncpg.connect(db_url)
    try:
        records = await conn.fetch(
            "SELECT category, reason, path, event_id, stage "
            "FROM carebus_exceptions.exception_record ORDER BY id"
        )
    finally:
        await conn.close()
    # The claim and the charge map in different partitions, each a batch of its own: which
    # records first is timing (order is kept per entity, not across partitions).
    found = {(r["category"], r["reason"], r["path"], r["stage"], r["event_id"]) for r in records}
    assert found == {
        ("mapping", "no_matching_rule", "$.event_type", "mapper", "val-CLM-1-v1"),
        ("mapping", "missing_dimension", "$.enrichment.cost_centre", "mapper", "val-CH-2-post"),
    }
    announced = await js.stream_info("EXCEPTIONS", subjects_filter="exceptions.mapper.mapping.>")
    assert announced.state.messages == 2

    status, metrics = http_get(f"{process.base}/metrics")
    text = metrics.decode()
    assert status == 200
    assert (
        'carebus_mapper_events_total{event="appointment.rescheduled",outcome="stale"} 1.0' in text
    )
    assert 'carebus_mapper_events_total{event="claim.adjudicated",outcome="unmapped"} 1.0' in text
    assert 'carebus_mapper_rule_set_info{version="2025.03.2"} 1.0' in text


def _fields(enrichment: Enrichment) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(enrichment)


async def test_preview_returns_the_journal_and_rule_without_publishing(
    mapper_service: tuple[ServiceProcess, JetStreamContext, str],
) -> None:
    process, js, _ = mapper_service
    url = f"{process.base}/v1/preview"
    status, body = _post(url, encode(validate(charge("CH-9", 777, payer_code=None))))
    assert status == 200
    assert body["outcome"] == "journal"
    assert body["rule"]["id"] == "charge-posted-self-pay"
    assert body["rule"]["file"] == "charges.toml"
    assert body["idempotency_key"] == "CH-9-post|2025.03.2"
    lines = [
        (x["account"], x["side"], x["amount"]["amount_minor"]) for x in body["journal"]["lines"]
    ]
    assert lines == [("1210", "debit", 777), ("4000", "credit", 777)]
    assert body["fencing"] is None

    status, body = _post(url, encode(validate(appointment(s.AppointmentBooked, "A9", 4))))
    assert status == 200
    assert body["fencing"] == {
        "entity_key": "A9",
        "entity_version": 4,
        "applied_version": None,
        "decision": "apply",
        "previous_status": "none",
    }

    status, problem = _post(url, encode(validate(claim("CLM-9"))))
    assert status == 422
    assert (problem["category"], problem["reason"]) == ("mapping", "no_matching_rule")

    status, problem = _post(
        url, b'{"event_type": "validated.charge.posted", "schema_version": "1.0"}'
    )
    assert status == 400
    assert problem["reason"] == "contract_decode_error"
    assert problem["path"] == "$"

    status, problem = _post(url, encode(charge("CH-9", 1)))
    assert (status, problem["reason"]) == (400, "not_a_validated_event")

    assert (await js.stream_info("ERP")).state.messages == 0
