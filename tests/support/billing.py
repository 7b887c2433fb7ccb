"""Helpers for the billing adapter tests: a running adapter on real NATS and PostgreSQL, the
BILLING stream's content, an MLLP client and the sample inventory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from nats.js import JetStreamContext

from carebus_billing_adapter.app import BillingAdapter, build
from carebus_billing_adapter.config import Settings
from carebus_contracts import Event, decode_message
from carebus_contracts.subjects import STREAM_BILLING
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.mllp import frame
from carebus_shared.mllp.framing import MllpDecoder
from tests.support import auth

# A valid FHIR R4 ChargeItem as a billing system posts it.
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


LFH_835 = "x12/LinuxForHealth-x12/src/tests/resources/835_005010X221A1"
PYX12_835 = "x12/azoner-pyx12/extracted/835_4010_X091A1_reversals_CLP22_PLB.835"
FHIR_EXPECTED = (
    "fhir-r4/microsoft-FHIR-Converter-expected/src/"
    "Microsoft.Health.Fhir.Liquid.Converter.FunctionalTests/TestData/Expected/Hl7v2"
)


@asynccontextmanager
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A database of the test's own on the shared server: the adapter's file memory and the
    exception store start empty, whatever other tests did."""
    name = f"billing_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = database_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Running:
    adapter: BillingAdapter
    http: httpx.AsyncClient
    js: JetStreamContext
    database_url: str

    @property
    def mllp_port(self) -> int:
        return self.adapter.listener.port

    async def billing_events(self) -> list[Event]:
        return await billing_events(self.js)

    async def exception_records(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch(
                "SELECT id, stage, category, reason, message, source, path, offending_value, "
                "content_type, raw, status FROM carebus_exceptions.exception_record ORDER BY id"
            )
        finally:
            await conn.close()
        return [dict(row) for row in rows]


async def billing_events(js: JetStreamContext) -> list[Event]:
    """Every message in the BILLING stream, decoded through the contracts."""
    info = await js.stream_info(STREAM_BILLING)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        msg = await js.get_msg(STREAM_BILLING, seq)
        events.append(decode_message(msg.subject, msg.data or b"", msg.headers))
    return events


@asynccontextmanager
async def running_adapter(
    nats_url: str, database_url: str, **settings: Any
) -> AsyncIterator[Running]:
    """The adapter's app with its lifespan, on a provisioned NATS and a fresh database."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision(js, TOPOLOGY)
    async with fresh_database(database_url) as db_url:
        config = Settings(
            nats_url=nats_url,
            database_url=db_url,
            mllp_port=0,
            shutdown_grace_s=5.0,
            **settings,
        )
        app = build(config)
        adapter: BillingAdapter = app.state.billing
        try:
            async with app.lifespan():
                await adapter.runtime.wait_started(30)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://billing", headers=auth.HEADERS
                ) as http:
                    yield Running(adapter, http, js, db_url)
        finally:
            await nc.close()


async def mllp_exchange(port: int, *messages: bytes, timeout_s: float = 15.0) -> list[bytes]:
    """Send each message over one MLLP connection and return the ACK of each, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = MllpDecoder(1_048_576)
    acks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            for message in messages:
                writer.write(frame(message))
                await writer.drain()
                while True:
                    frames = decoder.feed(await reader.read(65_536))
                    if frames:
                        acks.extend(f.payload for f in frames)  # type: ignore[union-attr]
                        break
    finally:
        writer.close()
        await writer.wait_closed()
    return acks


def ack_code(ack: bytes) -> str:
    msa = next(s for s in ack.decode().split("\r") if s.startswith("MSA"))
    return msa.split("|")[1]


def samples_with_suffix(samples: Path, top: str, suffix: str) -> list[Path]:
    return sorted(p for p in (samples / top).rglob(f"*{suffix}") if p.is_file())


def dft_samples(samples: Path) -> list[Path]:
    return sorted(p for p in (samples / "hl7v2").rglob("*.hl7") if b"|DFT^" in p.read_bytes())


def remittance_samples(samples: Path) -> list[Path]:
    """Every X12 file whose transaction set is an 835."""
    return sorted(
        p for p in (samples / "x12").rglob("*") if p.is_file() and b"ST*835*" in p.read_bytes()
    )
