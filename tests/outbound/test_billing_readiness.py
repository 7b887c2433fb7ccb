"""Billing readiness through the real outbound service (a process on a private NATS and a
database of its own) to mock receivers: delivered exactly once in effect through an outage,
a refusal kept as an exception record, a resend after a crash recognised by its control id,
and the channel chosen per site (HL7 v2 over MLLP, or FHIR R4 over HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.hl7.message import parse_message
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import OUTBOUND_BILLING_READINESS, TOPOLOGY, Topology
from tests.support.mapper import appointment, fresh_database, validate
from tests.support.receivers import FhirReceiver, MllpReceiver, mock_receivers
from tests.support.service_process import ServiceProcess, http_get

pytestmark = pytest.mark.slow

HL7_SITE, FHIR_SITE = "SITE01", "SITE02"
ACK_WAIT_S = 2.0  # the feed's ack deadline here: a crashed delivery comes back quickly


def _topology() -> Topology:
    spec = TOPOLOGY.consumer(OUTBOUND_BILLING_READINESS)
    quick = dataclasses.replace(spec, backoff_s=(ACK_WAIT_S, ACK_WAIT_S, ACK_WAIT_S))
    consumers = tuple(quick if c is spec else c for c in TOPOLOGY.consumers)
    return dataclasses.replace(TOPOLOGY, consumers=consumers)


@dataclass
class Stack:
    js: JetStreamContext
    db: asyncpg.Connection
    mllp: MllpReceiver
    fhir: FhirReceiver
    start: Callable[[], ServiceProcess]
    process: ServiceProcess | None = None

    def restart(self) -> ServiceProcess:
        self.process = self.start()
        self.process.wait_ready(60)
        return self.process


async def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _publish(js: JetStreamContext, events: list[Event], suffix: str = "") -> None:
    await publish_confirmed(
        js,
        [
            Outgoing(subject_for(e), encode(e), e.event_id + suffix, {**headers_for(e)})
            for e in events
        ],
    )


def _completed(appointment_id: str, site: str) -> Event:
    return validate(appointment(s.AppointmentCompleted, appointment_id, 2, site=site))


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await provision(js, _topology())
    async with fresh_database(database_url) as db_url, mock_receivers() as (mllp, fhir):
        port = free_port()
        env = {
            "NATS_URL": server.url,
            "DATABASE_URL": db_url,
            "CAREBUS_OUTBOUND_HTTP_PORT": str(port),
            "CAREBUS_OUTBOUND_BILLING_CHANNEL": "hl7",
            "CAREBUS_OUTBOUND_BILLING_SITE_CHANNELS": f"{FHIR_SITE}=fhir",
            "CAREBUS_OUTBOUND_BILLING_MLLP_PORT": str(mllp.port),
            "CAREBUS_OUTBOUND_BILLING_FHIR_URL": fhir.url,
            "CAREBUS_OUTBOUND_ANSWER_TIMEOUT_S": "1",
            "CAREBUS_OUTBOUND_RETRY_BASE_S": "0.2",
            "CAREBUS_OUTBOUND_RETRY_MAX_S": "0.5",
            "CAREBUS_SHUTDOWN_GRACE_S": "3",
        }
        argv = [sys.executable, "-m", "carebus_outbound.entrypoints.cli", "serve"]

        def start() -> ServiceProcess:
            return ServiceProcess(argv, env, port, tmp_path / "outbound.log").start()

        db = await asyncpg.connect(db_url)
        stack = Stack(js, db, mllp, fhir, start)
        try:
            await asyncio.to_thread(stack.restart)
            yield stack
        finally:
            if stack.process is not None:
                stack.process.kill()
            await db.close()
            await nc.close()
            server.stop()


async def _log(db: asyncpg.Connection) -> dict[str, tuple[str, str, int]]:
    rows = await db.fetch(
        "SELECT event_id, channel, status, attempts FROM carebus_outbound.delivery"
    )
    return {r["event_id"]: (r["channel"], r["status"], r["attempts"]) for r in rows}


async def test_delivered_once_through_an_outage_by_each_sites_channel(stack: Stack) -> None:
    hl7 = [_completed(f"H-{n}", HL7_SITE) for n in range(3)]
    fhir = [_completed(f"F-{n}", FHIR_SITE) for n in range(2)]
    await _publish(stack.js, [*hl7, *fhir])  # both receivers are down

    async def retried() -> bool:
        log = await _log(stack.db)
        return len(log) == 5 and all(a >= 2 and st == "pending" for _, st, a in log.values())

    await _until(retried, "every message tried at least twice while the receivers are down")
    assert stack.mllp.received == []
    assert stack.fhir.received == []

    await stack.mllp.up()
    stack.fhir.up()

    async def delivered() -> bool:
        return all(st == "delivered" for _, st, _ in (await _log(stack.db)).values())

    await _until(delivered, "every message delivered once the receivers are back")
    assert len(stack.mllp.accepted) == 3
    assert len(stack.fhir.accepted) == 2
    assert stack.mllp.duplicates == stack.fhir.duplicates == 0
    assert max(stack.mllp.receipts().values()) == max(stack.fhir.receipts().values()) == 1
    channels = {event_id: channel for event_id, (channel, _, _) in (await _log(stack.db)).items()}
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
    await _publish(stack.js, [*hl7, *fhir], suffix="-replayed")

    async def skipped() -> bool:
        rows = await stack.db.fetch("SELECT redeliveries FROM carebus_outbound.delivery")
        return sum(r["redeliveries"] for r in rows) == 5

    await _until(skipped, "the replayed events recognised as delivered")
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
    refused = [_completed("R-1", HL7_SITE), _completed("R-2", FHIR_SITE)]
    await _publish(stack.js, refused)

    async def recorded() -> list[Any]:
        return list(
            await stack.db.fetch(
                "SELECT event_id, site, category, reason, stream FROM "
                "carebus_exceptions.exception_record WHERE stage = $1 ORDER BY event_id",
                OUTBOUND_BILLING_READINESS,
            )
        )

    await _until(lambda: _count(recorded, 2), "both refusals recorded")
    assert [tuple(r) for r in await recorded()] == [
        (refused[0].event_id, HL7_SITE, "receiver_rejection", "receiver_error", "VALIDATED"),
        (refused[1].event_id, FHIR_SITE, "receiver_rejection", "receiver_refused", "VALIDATED"),
    ]
    log = await _log(stack.db)
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
    event = _completed("C-1", HL7_SITE)
    await _publish(stack.js, [event])
    await _until(lambda: stack.mllp.accepted, "the receiver taking the message")
    # The receiver has it; its ACK is still on the way when the feed dies.
    assert stack.process is not None
    stack.process.kill()
    assert await _log(stack.db) == {}
    stack.mllp.mode = "accept"
    await asyncio.to_thread(stack.restart)

    async def delivered() -> bool:
        return (await _log(stack.db)).get(event.event_id, ("", "", 0))[1] == "delivered"

    await _until(delivered, "the message delivered after the restart")
    (control_id,) = stack.mllp.accepted
    # Sent twice, under one control id: the receiver took it once and recognised the resend.
    assert stack.mllp.received == [control_id, control_id]
    assert stack.mllp.duplicates == 1
    assert (await _log(stack.db))[event.event_id] == ("hl7", "delivered", 1)
