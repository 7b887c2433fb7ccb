"""The outbound service as a real process on a private NATS and a database of its own,
with the mock receivers (tests/support/receivers.py) it delivers to; helpers of its tests."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import (
    OUTBOUND_BILLING_READINESS,
    OUTBOUND_MASTERDATA,
    OUTBOUND_STATUS_WEBHOOK,
    TOPOLOGY,
    ConsumerSpec,
    Topology,
)
from tests.support.mapper import appointment, fresh_database, validate
from tests.support.receivers import HttpReceiver, MllpReceiver, mock_receivers
from tests.support.service_process import ServiceProcess

HL7_SITE, FHIR_SITE = "SITE01", "SITE02"
ACK_WAIT_S = 2.0  # the feed's ack deadline here: a crashed delivery comes back quickly


FEEDS = (OUTBOUND_BILLING_READINESS, OUTBOUND_STATUS_WEBHOOK, OUTBOUND_MASTERDATA)
# Retries come every half second or so here: enough deliveries for a receiver down a minute.
MAX_DELIVERIES = 200


def quick_topology() -> Topology:
    """The suite's, with the feeds' ack deadline short and their deliveries many."""

    def quick(spec: ConsumerSpec) -> ConsumerSpec:
        if spec.durable not in FEEDS:
            return spec
        backoff = (ACK_WAIT_S, ACK_WAIT_S, ACK_WAIT_S)
        return dataclasses.replace(spec, backoff_s=backoff, max_deliver=MAX_DELIVERIES)

    return dataclasses.replace(TOPOLOGY, consumers=tuple(map(quick, TOPOLOGY.consumers)))


@dataclass
class Stack:
    js: JetStreamContext
    db: asyncpg.Connection
    mllp: MllpReceiver
    fhir: HttpReceiver
    webhook: HttpReceiver
    sched_mllp: MllpReceiver
    sched_fhir: HttpReceiver
    start: Callable[[], ServiceProcess]
    process: ServiceProcess | None = None

    def restart(self) -> ServiceProcess:
        self.process = self.start()
        self.process.wait_ready(60)
        return self.process


async def until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def publish(js: JetStreamContext, events: list[Event], suffix: str = "") -> None:
    await publish_confirmed(
        js,
        [
            Outgoing(subject_for(e), encode(e), e.event_id + suffix, {**headers_for(e)})
            for e in events
        ],
    )


def completed(appointment_id: str, site: str) -> Event:
    return validate(appointment(s.AppointmentCompleted, appointment_id, 2, site=site))


@asynccontextmanager
async def outbound_stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The service, started; the receivers down until a test brings them up."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await provision(js, quick_topology())
    async with fresh_database(database_url) as db_url, mock_receivers() as r:
        port = free_port()
        env = {
            "NATS_URL": server.url,
            "DATABASE_URL": db_url,
            "CAREBUS_OUTBOUND_HTTP_PORT": str(port),
            "CAREBUS_OUTBOUND_BILLING_CHANNEL": "hl7",
            "CAREBUS_OUTBOUND_BILLING_SITE_CHANNELS": f"{FHIR_SITE}=fhir",
            "CAREBUS_OUTBOUND_BILLING_MLLP_PORT": str(r.mllp.port),
            "CAREBUS_OUTBOUND_BILLING_FHIR_URL": r.fhir.url,
            "CAREBUS_OUTBOUND_STATUS_WEBHOOK_URL": r.webhook.url,
            "CAREBUS_OUTBOUND_MASTERDATA_SUBSCRIBERS": (
                f"SCHED-HL7=hl7:127.0.0.1:{r.sched_mllp.port},SCHED-FHIR=fhir:{r.sched_fhir.url}"
            ),
            "CAREBUS_OUTBOUND_ANSWER_TIMEOUT_S": "1",
            "CAREBUS_OUTBOUND_RETRY_BASE_S": "0.2",
            "CAREBUS_OUTBOUND_RETRY_MAX_S": "0.5",
            "CAREBUS_OUTBOUND_MAX_DELIVERIES": str(MAX_DELIVERIES),
            "CAREBUS_SHUTDOWN_GRACE_S": "3",
        }
        argv = [sys.executable, "-m", "carebus_outbound.entrypoints.cli", "serve"]

        def start() -> ServiceProcess:
            return ServiceProcess(argv, env, port, tmp_path / "outbound.log").start()

        db = await asyncpg.connect(db_url)
        stack = Stack(js, db, r.mllp, r.fhir, r.webhook, r.sched_mllp, r.sched_fhir, start)
        try:
            await asyncio.to_thread(stack.restart)
            yield stack
        finally:
            if stack.process is not None:
                stack.process.kill()
            await db.close()
            await nc.close()
            server.stop()


async def delivery_log(db: asyncpg.Connection) -> dict[str, tuple[str, str, int]]:
    """Event id (``@receiver`` when a feed has several) → channel, status, attempts."""
    rows = await db.fetch(
        "SELECT event_id, receiver, channel, status, attempts FROM carebus_outbound.delivery"
    )
    return {
        r["event_id"] + (f"@{r['receiver']}" if r["receiver"] else ""): (
            r["channel"], r["status"], r["attempts"],
        )
        for r in rows
    }  # fmt: skip
