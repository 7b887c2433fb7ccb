"""Billing readiness through the real outbound service (a process on a private NATS and a
database of its own) to mock receivers: delivered exactly once in effect through an outage,
a refusal kept as an exception record, a resend after a crash recognised by its control id,
and the channel chosen per site (HL7 v2 over MLLP, or FHIR R4 over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from carebus_shared.hl7.message import parse_message
from carebus_shared.jetstream.topology import OUTBOUND_BILLING_READINESS
from tests.support.outbound import (
    FHIR_SITE,
    HL7_SITE,
    Stack,
    completed,
    delivery_log,
    publish,
    until,
)
from tests.support.service_process import http_get

pytestmark = pytest.mark.slow


async def test_delivered_once_through_an_outage_by_each_sites_channel(stack: Stack) -> None:
    hl7 = [completed(f"H-{n}", HL7_SITE) for n in range(3)]
    fhir = [completed(f"F-{n}", FHIR_SITE) for n in range(2)]
    await publish(stack.js, [*hl7, *fhir])  # both receivers are down

    async def retried() -> bool:
        log = await delivery_log(stack.db)
        return len(log) == 5 and all(a >= 2 and st == "pending" for _, st, a in log.values())

    await until(retried, "every message tried at least twice while the receivers are down")
    assert stack.mllp.received == []
    assert stack.fhir.received == []

    await stack.mllp.up()
    stack.fhir.up()

    async def delivered() -> bool:
        return all(st == "delivered" for _, st, _ in (await delivery_log(stack.db)).values())

    await until(delivered, "every message delivered once the receivers are back")
    assert len(stack.mllp.accepted) == 3
    assert len(stack.fhir.accepted) == 2
    assert stack.mllp.duplicates == stack.fhir.duplicates == 0
    assert max(stack.mllp.receipts().values()) == max(stack.fhir.receipts().values()) == 1
    channels = {
        event_id: channel for event_id, (channel, _, _) in (await delivery_log(stack.db)).items()
    }
    assert channels == {e.event_id: "hl7" for e in hl7} | {e.event_id: "fhir" for e in fhir}

    # What reached the HL7 receiver is an ADT^A03 naming the visit, MSH-10 its control id.
    visits = set()
    for control_id, body in stack.mllp.accepted.items():
        message = parse_message(body)
        msh, pv1 = message.segments[0], next(x for x in message.segments if x.name == "PV1")
        assert (msh.value(9), msh.value(9, 2), msh.value(10)) == ("ADT", "A03", control_id)
        visits.add(pv1.value(19))
    assert visits == {"H-0", "H-1", "H-2"}
    assert stack.fhir.identifiers == {f"identifier=urn:carebus:appointment|F-{n}" for n in range(2)}

    # The same events again (a replay, new message ids): recognised by the delivery log,
    # nothing sent twice.
    await publish(stack.js, [*hl7, *fhir], suffix="-replayed")

    async def skipped() -> bool:
        rows = await stack.db.fetch("SELECT redeliveries FROM carebus_outbound.delivery")
        return sum(int(r["redeliveries"]) for r in rows) == 5

    await until(skipped, "the replayed events recognised as delivered")
    assert len(stack.mllp.received) == 3
    assert len(stack.fhir.received) == 2
    metrics = http_get(f"{stack.process.base}/metrics", 5)[1].decode()  # type: ignore[union-attr]
    assert (
        'carebus_outbound_messages_total{channel="hl7",feed="billing-readiness",'
        'outcome="duplicate"} 3.0' in metrics
    )
    assert "H-0" not in metrics
    assert "SITE01" not in metrics


async def test_a_refusal_is_kept_as_an_exception_record(stack: Stack) -> None:
    stack.mllp.mode = stack.fhir.mode = "refuse"
    await stack.mllp.up()
    stack.fhir.up()
    refused = [completed("R-1", HL7_SITE), completed("R-2", FHIR_SITE)]
    await publish(stack.js, refused)

    async def recorded() -> list[Any]:
        return list(
            await stack.db.fetch(
                "SELECT event_id, site, category, reason, stream FROM "
                "carebus_exceptions.exception_record WHERE stage = $1 ORDER BY event_id",
                OUTBOUND_BILLING_READINESS,
            )
        )

    await until(lambda: _count(recorded, 2), "both refusals recorded")
    assert [tuple(r) for r in await recorded()] == [
        (refused[0].event_id, HL7_SITE, "receiver_rejection", "receiver_error", "VALIDATED"),
        (refused[1].event_id, FHIR_SITE, "receiver_rejection", "receiver_refused", "VALIDATED"),
    ]
    log = await delivery_log(stack.db)
    assert {k: v[1] for k, v in log.items()} == {e.event_id: "refused" for e in refused}
    # Sent once each, not retried: a refusal is for a person to look at.
    await asyncio.sleep(1.0)
    assert len(stack.mllp.received) == len(stack.fhir.received) == 1
    assert stack.mllp.accepted == {}
    assert stack.fhir.accepted == {}


async def _count(query: Callable[[], Any], n: int) -> bool:
    return len(await query()) == n


async def test_a_resend_after_a_crash_is_recognised_by_its_control_id(stack: Stack) -> None:
    stack.mllp.mode, stack.mllp.delay_s = "slow", 30.0
    await stack.mllp.up()
    event = completed("C-1", HL7_SITE)
    await publish(stack.js, [event])
    await until(lambda: stack.mllp.accepted, "the receiver taking the message")
    # The receiver has it; its ACK is still on the way when the feed dies.
    assert stack.process is not None
    stack.process.kill()
    assert await delivery_log(stack.db) == {}
    stack.mllp.mode = "accept"
    await asyncio.to_thread(stack.restart)

    async def delivered() -> bool:
        return (await delivery_log(stack.db)).get(event.event_id, ("", "", 0))[1] == "delivered"

    await until(delivered, "the message delivered after the restart")
    (control_id,) = stack.mllp.accepted
    # Sent twice, under one control id: the receiver took it once and recognised the resend.
    assert stack.mllp.received == [control_id, control_id]
    assert stack.mllp.duplicates == 1
    assert (await delivery_log(stack.db))[event.event_id] == ("hl7", "delivered", 1)
