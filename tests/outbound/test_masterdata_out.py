"""Master data out through the real outbound service: provider, location and service
changes reach both subscribed scheduling systems (MFN over MLLP, FHIR conditional updates),
in order, once each, through one system's outage (which holds the other back: one change
out at a time); other master data is not sent."""

from __future__ import annotations

import msgspec
import pytest

from carebus_contracts import masterdata as md
from carebus_contracts.envelope import Event
from carebus_shared.hl7.message import parse_message
from tests.support.mapper import envelope
from tests.support.ops_console import location
from tests.support.outbound import Stack, delivery_log, publish, until

pytestmark = pytest.mark.slow


def _provider(version: int, active: bool = True) -> md.ProviderChanged:
    return md.ProviderChanged(
        **envelope(f"prov-1-v{version}", "provider:P-1", version),
        change=md.ChangeKind.UPSERTED if active else md.ChangeKind.DEACTIVATED,
        provider=md.Provider(
            provider_id="P-1", npi="1234567893", name=f"Dr Ada v{version}", active=active
        ),
    )


def _service() -> md.ServiceChanged:
    return md.ServiceChanged(
        **envelope("svc-99213", "service:99213"),
        change=md.ChangeKind.UPSERTED,
        service=md.Service(
            service_code="99213", code_system=md.CodeSystem.CPT, description="Office visit"
        ),
    )


def _payer() -> md.PayerChanged:
    return md.PayerChanged(
        **envelope("payer-bcbs", "payer:BCBS"),
        change=md.ChangeKind.UPSERTED,
        payer=md.Payer(payer_id="BCBS", name="Blue", payer_class=md.PayerClass.COMMERCIAL),
    )


async def test_changes_reach_each_subscribed_scheduling_system_once_in_order(
    stack: Stack,
) -> None:
    changes: list[Event] = [_provider(1), location("SITE01"), _service(), _provider(2, False)]
    stack.sched_fhir.up()  # the FHIR system is up
    await publish(stack.js, [*changes[:2], _payer(), *changes[2:]])  # the HL7 one is down

    async def first_retried() -> bool:
        log = await delivery_log(stack.db)
        return log.get("prov-1-v1@SCHED-HL7", ("", "", 0))[2] >= 3

    await until(first_retried, "the first change retried for the HL7 system")
    # One change out at a time: the FHIR system has the first (once, however often it is
    # retried for the other), and the next waits until the HL7 system is back.
    assert len(stack.sched_fhir.received) == 1
    await stack.sched_mllp.up()

    async def hl7_has_all() -> bool:
        return len(stack.sched_mllp.accepted) == len(changes)

    await until(hl7_has_all, "every change at the HL7 scheduling system after its outage")
    # In the order they changed, once each, the payer left out.
    kinds = [
        (parse_message(body).segments[0].value(9, 2), parse_message(body).segments[2].value(1))
        for body in stack.sched_mllp.accepted.values()
    ]
    assert kinds == [("M02", "MUP"), ("M05", "MUP"), ("M04", "MUP"), ("M02", "MDC")]
    resources = [msgspec.json.decode(b) for b in stack.sched_fhir.accepted.values()]
    assert [r["resourceType"] for r in resources] == [
        "Practitioner", "Location", "HealthcareService", "Practitioner",
    ]  # fmt: skip
    assert (resources[0]["active"], resources[3]["active"]) == (True, False)
    assert stack.sched_mllp.duplicates == stack.sched_fhir.duplicates == 0
    assert len(stack.sched_fhir.received) == len(stack.sched_mllp.received) == len(changes)
    log = await delivery_log(stack.db)
    assert len(log) == 2 * len(changes)  # one row per change and system
    assert {status for _, status, _ in log.values()} == {"delivered"}
