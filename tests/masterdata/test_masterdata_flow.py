"""In-flight validation and the quarantine, end to end: the service as a real process on a real
NATS and PostgreSQL; events in on SCHEDULING/BILLING, master data in through the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import httpx
from nats.js import JetStreamContext

from carebus_contracts.exceptions import ExceptionRaised
from carebus_contracts.validated import Validated
from carebus_shared import audit, crypto
from tests.support.masterdata import (
    VALID_NPIS,
    Collector,
    appointment,
    charge,
    eventually,
    publish,
    unique,
)


async def _create(api: httpx.AsyncClient, collection: str, body: dict[str, Any]) -> None:
    response = await api.post(f"/v1/{collection}", json=body)
    assert response.status_code == 201, response.text


async def _parked(api: httpx.AsyncClient, entity_key: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/quarantine", params={"entity_key": entity_key})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        label_set = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric == name and label_set == wanted:
            return float(value)
    return 0.0


async def test_unknown_provider_is_quarantined_then_released_when_the_provider_is_added(
    api: httpx.AsyncClient,
    md_js: JetStreamContext,
    md_db: asyncpg.Connection,
    data_key: crypto.Keyring,
) -> None:
    site, source = unique("S"), unique("sched-")
    appt_id = unique("A-")
    code = "1234^SMITH^JOHN"
    async with (
        Collector(md_js, "VALIDATED", f"validated.*.*.v1.{site}.*") as validated,
        Collector(md_js, "EXCEPTIONS", f"exceptions.*.*.v1.{site}.*") as exceptions,
    ):
        await publish(
            md_js,
            [appointment(site=site, source=source, appointment_id=appt_id, provider_code=code)],
        )

        # Quarantined: an exception event with the specific reason and offending value,
        # a record in the exception store, a parked event, and the metrics say so.
        (exc,) = await exceptions.until(1)
        assert isinstance(exc, ExceptionRaised)
        assert (exc.reason_code, exc.offending_value) == ("unknown_provider", code)
        assert exc.path == "$.appointment.provider_code"
        parked = await _parked(api, appt_id)
        assert len(parked) == 1
        assert parked[0]["failures"][0]["reason"] == "unknown_provider"
        record = await md_db.fetchrow(
            "SELECT status, category, reason, offending_value "
            "FROM carebus_exceptions.exception_record WHERE event_id = $1",
            f"evt-{appt_id}-1",
        )
        assert {**record, "offending_value": crypto.unseal_text(record["offending_value"])} == {
            "status": "open",
            "category": "masterdata",
            "reason": "unknown_provider",
            "offending_value": code,
        }
        metrics = (await api.get("/metrics")).text
        assert (
            _metric(
                metrics,
                "carebus_validator_lookup_failures_total",
                reason="unknown_provider",
                site=site,
            )
            == 1
        )
        assert _metric(metrics, "carebus_validator_quarantine_events") >= 1
        await validated.drain(0.3)
        assert validated.events == []

        # A data steward adds the provider and the scheduling system's code for it ...
        provider_id = unique("P-")
        await _create(
            api, "providers", {"provider_id": provider_id, "npi": VALID_NPIS[0], "name": "Smith"}
        )
        assert await _parked(api, appt_id), "a provider alone does not name the code yet"
        await _create(
            api,
            "cross-references",
            {
                "source_system": source,
                "kind": "provider",
                "source_code": code,
                "canonical_id": provider_id,
            },
        )

        # ... and the event flows on by itself, enriched.
        (event,) = await validated.until(1)
        assert isinstance(event, Validated)
        assert event.original.event_id == f"evt-{appt_id}-1"
        assert event.causation_id == f"evt-{appt_id}-1"
        assert event.enrichment.provider_id == provider_id
        assert event.enrichment.provider_npi == VALID_NPIS[0]
        # Published first, then forgotten (so a crash in between re-publishes, never loses).
        await eventually(lambda: _parked_count(api, appt_id, 0), "the quarantine emptied")
        status = await md_db.fetchval(
            "SELECT status FROM carebus_exceptions.exception_record WHERE event_id = $1",
            f"evt-{appt_id}-1",
        )
        assert status == "redriven"


async def test_an_expired_provider_is_refused_after_its_end_date_and_accepted_before(
    api: httpx.AsyncClient, md_js: JetStreamContext, md_db: asyncpg.Connection
) -> None:
    site, source = unique("S"), unique("sched-")
    provider_id = unique("P-")
    await _create(
        api,
        "providers",
        {
            "provider_id": provider_id,
            "npi": VALID_NPIS[1],
            "name": "Jones",
            "valid_from": "2024-01-01",
            "valid_to": "2025-03-31",
        },
    )
    early, late = unique("A-"), unique("A-")
    async with (
        Collector(md_js, "VALIDATED", f"validated.*.*.v1.{site}.*") as validated,
        Collector(md_js, "EXCEPTIONS", f"exceptions.*.*.v1.{site}.*") as exceptions,
    ):
        await eventually(lambda: _view_caught_up(api, md_db), "the provider in the view")
        await publish(
            md_js,
            [
                appointment(
                    site=site,
                    source=source,
                    appointment_id=early,
                    on=dt.date(2025, 3, 31),
                    provider_code=provider_id,
                ),
                appointment(
                    site=site,
                    source=source,
                    appointment_id=late,
                    on=dt.date(2025, 4, 1),
                    provider_code=provider_id,
                ),
            ],
        )
        (ok,) = await validated.until(1)
        (refused,) = await exceptions.until(1)
        assert isinstance(ok, Validated)
        assert isinstance(refused, ExceptionRaised)
        assert ok.entity_key == early
        assert ok.enrichment.provider_id == provider_id
        assert refused.causation_id == f"evt-{late}-1"
        assert refused.reason_code == "inactive_provider"
        assert "2025-04-01" in refused.message
        assert [p["event_id"] for p in await _parked(api, late)] == [f"evt-{late}-1"]


_TABLES = (
    "provider",
    "location",
    "department",
    "service",
    "payer",
    "cost_centre",
    "cross_reference",
)


async def _view_caught_up(api: httpx.AsyncClient, db: asyncpg.Connection) -> bool:
    """Every committed record went through the outbox and the KV bucket into the view."""
    pending = await db.fetchval("SELECT count(*) FROM carebus_masterdata_validator.outbox")
    records = 0
    for table in _TABLES:
        records += await db.fetchval(f"SELECT count(*) FROM carebus_masterdata_validator.{table}")
    metrics = (await api.get("/metrics")).text
    return pending == 0 and _metric(metrics, "carebus_validator_view_records") == records


async def test_an_invalid_npi_in_an_event_is_quarantined_as_invalid_npi(
    api: httpx.AsyncClient, md_js: JetStreamContext
) -> None:
    site, source = unique("S"), unique("sched-")
    appt_id = unique("A-")
    async with Collector(md_js, "EXCEPTIONS", f"exceptions.*.*.v1.{site}.*") as exceptions:
        await publish(
            md_js,
            [
                appointment(
                    site=site, source=source, appointment_id=appt_id, provider_code="9941339109"
                )
            ],
        )
        (exc,) = await exceptions.until(1)
    assert isinstance(exc, ExceptionRaised)
    assert (exc.reason_code, exc.offending_value) == ("invalid_npi", "9941339109")


async def test_parked_events_are_released_in_their_original_order_per_entity(
    api: httpx.AsyncClient, md_js: JetStreamContext, md_db: asyncpg.Connection
) -> None:
    site, source = unique("S"), unique("sched-")
    known, missing = unique("P-"), unique("P-")
    await _create(api, "providers", {"provider_id": known, "npi": VALID_NPIS[2], "name": "K"})
    blocked, free = unique("A-"), unique("A-")
    async with Collector(md_js, "VALIDATED", f"validated.*.*.v1.{site}.*") as validated:
        await eventually(lambda: _view_caught_up(api, md_db), "the provider in the view")
        await publish(
            md_js,
            [
                # Version 1 names a provider nobody has entered yet; 2 and 3 are fine on their
                # own but must not overtake 1. Another appointment is not held up.
                appointment(
                    site=site,
                    source=source,
                    appointment_id=blocked,
                    version=1,
                    provider_code=missing,
                ),
                appointment(
                    site=site, source=source, appointment_id=blocked, version=2, provider_code=known
                ),
                appointment(
                    site=site, source=source, appointment_id=free, version=1, provider_code=known
                ),
                appointment(
                    site=site, source=source, appointment_id=blocked, version=3, provider_code=known
                ),
            ],
        )
        (first,) = await validated.until(1)
        assert first.entity_key == free
        parked = await eventually(
            lambda: _parked_count(api, blocked, 3), "three parked events of one appointment"
        )
        assert [p["queued_behind_earlier_event"] for p in parked] == [False, True, True]

        await _create(api, "providers", {"provider_id": missing, "npi": VALID_NPIS[3], "name": "M"})
        events = await validated.until(4)
        released = [e for e in events if e.entity_key == blocked]
        assert [e.entity_version for e in released] == [1, 2, 3]
        assert isinstance(released[0], Validated)
        assert released[0].enrichment.provider_id == missing
        await eventually(lambda: _parked_count(api, blocked, 0), "the quarantine emptied")


async def _parked_count(
    api: httpx.AsyncClient, entity_key: str, count: int
) -> list[dict[str, Any]] | None:
    parked = await _parked(api, entity_key)
    return (parked or [{}]) if len(parked) == count else None


async def test_a_person_can_release_or_discard_parked_events(
    api: httpx.AsyncClient, md_js: JetStreamContext, md_db: asyncpg.Connection
) -> None:
    site, source = unique("S"), unique("billing-")
    payer = unique("PY-")
    await _create(
        api,
        "services",
        {"service_code": "99213", "code_system": "CPT", "description": "Office visit"},
    )
    first, second = unique("CH-"), unique("CH-")
    async with Collector(md_js, "VALIDATED", f"validated.*.*.v1.{site}.*") as validated:
        await publish(
            md_js,
            [
                charge(
                    site=site,
                    source=source,
                    charge_id=first,
                    service_code="99213",
                    payer_code=payer,
                ),
                charge(
                    site=site,
                    source=source,
                    charge_id=second,
                    service_code="99213",
                    payer_code=payer,
                ),
            ],
        )
        (one,) = await eventually(lambda: _parked_count(api, first, 1), "a parked charge")
        await eventually(lambda: _parked_count(api, second, 1), "another parked charge")

        # Releasing while the payer is still unknown cannot succeed: 409, naming the reason.
        response = await api.post(f"/v1/quarantine/{one['id']}/release")
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["failures"][0]["reason"] == "unknown_payer"

        # A person discards the first; it is gone, with the reason recorded.
        response = await api.post(
            f"/v1/quarantine/{one['id']}/discard", json={"note": "duplicate charge"}
        )
        assert response.status_code == 200, response.text
        assert await _parked(api, first) == []
        row = await md_db.fetchrow(
            "SELECT status, resolved_by, resolution_note FROM carebus_exceptions.exception_record"
            " WHERE event_id = $1",
            f"evt-{first}",
        )
        assert dict(row) == {
            "status": "discarded",
            "resolved_by": "test-steward",
            "resolution_note": "duplicate charge",
        }
        # Both acts are in the audit log, and so are the reads that showed the failures.
        found = await audit.entries(md_db, target_id=str(one["id"]))
        assert [(e.actor, e.action, e.target_kind, e.outcome) for e in reversed(found)] == [
            ("test-steward", "release", "parked_event", "still_parked"),
            ("test-steward", "discard", "parked_event", "discarded"),
        ]
        views = await audit.entries(md_db, action="phi_view", target_kind="parked_events")
        assert any(str(one["id"]) in audit.detail_of(e)["ids"].split(",") for e in views)
        assert await audit.verify(md_db) is None

        # The payer arrives: the other charge is released, enriched with its payer class.
        await _create(api, "payers", {"payer_id": payer, "name": "Acme", "payer_class": "medicaid"})
        (event,) = await validated.until(1)
        assert isinstance(event, Validated)
        assert event.entity_key == second
        assert (event.enrichment.payer_id, event.enrichment.payer_class) == (payer, "medicaid")


async def test_parked_failures_are_sealed_at_rest_and_opened_for_the_api(
    api: httpx.AsyncClient,
    md_js: JetStreamContext,
    md_db: asyncpg.Connection,
    data_key: crypto.Keyring,
) -> None:
    """The failures quote the offending value: the column holds it sealed (as the raw input
    is), written on parking and on a release that still fails; the API shows it opened."""
    site, source, appt_id = unique("S"), unique("sched-"), unique("A-")
    code = unique("QZXSEALED")
    await publish(
        md_js, [appointment(site=site, source=source, appointment_id=appt_id, provider_code=code)]
    )
    (parked,) = await eventually(lambda: _parked(api, appt_id), "the parked appointment")
    assert parked["failures"][0]["offending_value"] == code

    async def stored() -> bytes:
        value = await md_db.fetchval(
            "SELECT failures FROM carebus_masterdata_validator.parked_event WHERE id = $1",
            parked["id"],
        )
        return value.encode() if isinstance(value, str) else bytes(value)

    assert code.encode() not in await stored()
    assert crypto.sealed_with(await stored()) == data_key.current
    response = await api.post(f"/v1/quarantine/{parked['id']}/release")
    assert response.status_code == 409  # still unknown: its failures are written again
    assert code.encode() not in await stored()
    (again,) = await _parked(api, appt_id)
    assert again["failures"][0]["offending_value"] == code
    assert again["attempts"] == 1
