"""Remittances booked to their claim's site (docs/decisions/021), end to end: the validator as a
real process on a real NATS and PostgreSQL; charges and 835 events in on BILLING.

An 835 names a payee, not a site, so the billing adapter files its events under its default
site; the claim (CLP01, the charges' encounter) says where the charges were booked.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.envelope import Event
from carebus_contracts.exceptions import ExceptionRaised
from carebus_contracts.validated import SiteSource, Validated
from carebus_shared import crypto
from tests.support.masterdata import (
    VALID_NPIS,
    Collector,
    charge,
    eventually,
    publish,
    remittance,
    unique,
)

X12 = "x12-835"


async def _create(api: httpx.AsyncClient, collection: str, body: dict[str, Any]) -> None:
    response = await api.post(f"/v1/{collection}", json=body)
    # The visit code is shared by the tests of this module (one database per module).
    assert response.status_code in (201, 409), response.text


async def _billing_masterdata(api: httpx.AsyncClient) -> str:
    await _create(
        api,
        "services",
        {"service_code": "99213", "code_system": "CPT", "description": "Office visit"},
    )
    payer = unique("PY-")
    await _create(api, "payers", {"payer_id": payer, "name": "Acme", "payer_class": "commercial"})
    return payer


async def _parked(api: httpx.AsyncClient, entity_key: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/quarantine", params={"entity_key": entity_key})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _claim_charge(site: str, source: str, payer: str, claim: str) -> Event:
    """A visit's charge at ``site``; its encounter is the claim the billing system submits."""
    return charge(
        site=site, source=source, charge_id=unique("CH-"), service_code="99213",
        payer_code=payer, encounter_id=claim,
    )  # fmt: skip


async def _nothing_parked(api: httpx.AsyncClient, *entity_keys: str) -> bool:
    return all([await _parked(api, key) == [] for key in entity_keys])


def _booked(events: list[Event]) -> dict[str, tuple[str, SiteSource | None]]:
    """event type → (site, site_source) of the validated remittance events collected."""
    return {
        e.original.event_type: (e.site, getattr(e, "site_source", None))
        for e in events
        if isinstance(e, Validated) and e.original.event_type != "billing.charge.posted"
    }


async def _publish_as_redelivery(js: JetStreamContext, event: Event, copy: str) -> None:
    """The same event again under another message id (a replay, or a resend past the
    duplicate window): JetStream does not drop it, the validator must take it in its stride."""
    headers = {**headers_for(event), "Nats-Msg-Id": f"{event.event_id}#{copy}"}
    await js.publish(subject_for(event), encode(event), headers=headers)


async def test_a_remittance_is_booked_to_the_site_of_its_claims_charges(
    api: httpx.AsyncClient, md_js: JetStreamContext
) -> None:
    payer = await _billing_masterdata(api)
    site, office = unique("SITE"), unique("CBO")
    claim, source = unique("V"), unique("billing-")
    async with (
        Collector(md_js, "VALIDATED", f"validated.*.*.*.{site}.*") as at_site,
        Collector(md_js, "VALIDATED", f"validated.*.*.*.{office}.*") as at_office,
    ):
        await publish(md_js, [_claim_charge(site, source, payer, claim)])
        await at_site.until(1)
        await publish(
            md_js,
            remittance(site=office, source=X12, key=unique("R"), payer_code=payer, claim_id=claim),
        )
        events = await at_site.until(4)
        await at_office.drain(0.3)

    assert _booked(events) == {
        "billing.claim.adjudicated": (site, SiteSource.CLAIM),
        "billing.payment.posted": (site, SiteSource.CLAIM),
        "billing.adjustment.posted": (site, SiteSource.CLAIM),
    }
    # The original is untouched: it still says where the adapter filed it.
    assert {e.original.site for e in events if isinstance(e, Validated)} == {site, office}
    assert at_office.events == []


async def test_a_remittance_for_a_claim_not_yet_seen_waits_until_its_charge_arrives(
    api: httpx.AsyncClient, md_js: JetStreamContext, md_db: asyncpg.Connection
) -> None:
    payer = await _billing_masterdata(api)
    site, office = unique("SITE"), unique("CBO")
    claim, source, key = unique("V"), unique("billing-"), unique("R")
    async with (
        Collector(md_js, "VALIDATED", f"validated.*.*.*.{site}.*") as at_site,
        Collector(md_js, "VALIDATED", f"validated.*.*.*.{office}.*") as at_office,
        Collector(md_js, "EXCEPTIONS", f"exceptions.*.*.v1.{office}.*") as exceptions,
    ):
        await publish(
            md_js, remittance(site=office, source=X12, key=key, payer_code=payer, claim_id=claim)
        )
        raised = await exceptions.until(3)
        assert {(e.reason_code, e.path) for e in raised if isinstance(e, ExceptionRaised)} == {
            ("unknown_claim", "$.claim_id")
        }
        assert len(await _parked(api, f"{key}-pay")) == 1
        assert len(await _parked(api, claim)) == 1  # the adjudication, keyed by its claim
        await at_office.drain(0.3)
        assert at_office.events == [], "nothing is booked before its claim is known"

        # The claim's charge arrives: the three are released, booked to the charge's site.
        await publish(md_js, [_claim_charge(site, source, payer, claim)])
        events = await at_site.until(4)

    assert set(_booked(events).values()) == {(site, SiteSource.CLAIM)}
    # The release publishes, then forgets the parked events in the same transaction.
    await eventually(lambda: _nothing_parked(api, f"{key}-pay", claim), "the quarantine empty")
    statuses = await md_db.fetch(
        "SELECT DISTINCT status FROM carebus_exceptions.exception_record WHERE event_id = ANY($1)",
        [f"evt-{key}-claim", f"evt-{key}-pay", f"evt-{key}-co45"],
    )
    assert [row["status"] for row in statuses] == ["redriven"]


async def test_the_payees_location_is_the_fallback_for_an_unknown_claim_and_for_a_plb(
    api: httpx.AsyncClient, md_js: JetStreamContext
) -> None:
    payer = await _billing_masterdata(api)
    payee_site, office, location = unique("SITE"), unique("CBO"), unique("L-")
    npi = VALID_NPIS[3]
    await _create(
        api,
        "locations",
        {
            "location_id": location, "name": "East clinic", "site_code": payee_site,
            "place_of_service": "11", "time_zone": "America/Chicago",
        },
    )  # fmt: skip
    await _create(
        api,
        "cross-references",
        {"source_system": X12, "kind": "location", "source_code": npi, "canonical_id": location},
    )
    key = unique("R")
    async with Collector(md_js, "VALIDATED", f"validated.*.*.*.{payee_site}.*") as at_payee:
        await publish(
            md_js,
            remittance(
                site=office, source=X12, key=key, payer_code=payer, claim_id=unique("V"),
                payee_npi=npi,
            ),
        )  # fmt: skip
        # Booked at the payee's site only once the validator's view has the cross-reference
        # (parked until then); the master data reaches the view after the API answers.
        await at_payee.until(3)  # the adjudication, its payment and its CO-45
        await publish(
            md_js,
            remittance(site=office, source=X12, key=key, payer_code=payer, claim_id=None,
                       payee_npi=npi),
        )  # fmt: skip
        events = await at_payee.until(4)

    assert {(e.site, getattr(e, "site_source", None)) for e in events} == {
        (payee_site, SiteSource.PAYEE)
    }
    # The location becomes the events' location dimension.
    assert {e.enrichment.location_id for e in events if isinstance(e, Validated)} == {location}


async def test_a_redelivered_charge_or_remittance_changes_nothing(
    api: httpx.AsyncClient,
    md_js: JetStreamContext,
    md_db: asyncpg.Connection,
    data_key: crypto.Keyring,
) -> None:
    payer = await _billing_masterdata(api)
    site, other_site, office = unique("SITE"), unique("SITE"), unique("CBO")
    claim, source, key = unique("V"), unique("billing-"), unique("R")
    first = _claim_charge(site, source, payer, claim)
    # A later charge of the same claim filed under another site does not move the claim.
    stray = _claim_charge(other_site, source, payer, claim)
    events = remittance(site=office, source=X12, key=key, payer_code=payer, claim_id=claim)
    async with Collector(md_js, "VALIDATED", f"validated.*.*.*.{site}.*") as at_site:
        await publish(md_js, [first])
        await at_site.until(1)
        await _publish_as_redelivery(md_js, first, "again")
        await publish(md_js, [stray])
        await publish(md_js, events)
        for event in events:
            await _publish_as_redelivery(md_js, event, "again")
        await at_site.until(4)
        await at_site.drain(0.5)

    # Each validated event once (its id derives from the original's), all at the first site.
    assert sorted(e.original.event_type for e in at_site.events if isinstance(e, Validated)) == [
        "billing.adjustment.posted",
        "billing.charge.posted",
        "billing.claim.adjudicated",
        "billing.payment.posted",
    ]
    indexed = await md_db.fetch(
        "SELECT site, patient_ref FROM carebus_masterdata_validator.claim_index "
        "WHERE claim_id = $1",
        claim,
    )
    assert [row["site"] for row in indexed] == [site]
    # The patient's reference is kept sealed (docs/decisions/028); it opens with the key.
    [sealed] = [row["patient_ref"] for row in indexed]
    assert "MRN-1" not in sealed
    assert crypto.unseal_text(sealed) == "MRN-1"
    charges = await md_db.fetchval(
        "SELECT count(*) FROM carebus_masterdata_validator.claim_charge WHERE claim_id = $1", claim
    )
    assert charges == 2  # the first charge once, despite its redelivery, and the stray one
