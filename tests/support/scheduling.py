"""Running the scheduling adapter in-process against real NATS and PostgreSQL, and probing it.

The app is the production one (``app.build``) served by uvicorn on a free loopback port in
the test's event loop, with the MLLP listener on another free port.  Helpers read what
reached the SCHEDULING stream and the exception store.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import uvicorn

from carebus_contracts.subjects import STREAM_SCHEDULING
from carebus_scheduling_adapter.app import build
from carebus_scheduling_adapter.config import STAGE, Settings
from carebus_shared.devstack.ports import free_port
from carebus_shared.hl7 import parse_message
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.mllp import frame
from tests.support import auth

VT, FS = b"\x0b", b"\x1c"


def settings_for(nats_url: str, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "http_port": free_port(),
        "mllp_port": free_port(),
        "default_tz": "America/Chicago",
        "site": "SITE01",
        "shutdown_grace_s": 5.0,
        "publish_timeout_s": 2.0,
        **overrides,
    }
    return msgspec.convert(values, Settings)


async def provision_all(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream(), TOPOLOGY)
    finally:
        await nc.close()


@dataclass
class Adapter:
    settings: Settings
    http: httpx.AsyncClient

    @property
    def mllp_port(self) -> int:
        return self.settings.mllp_port


@asynccontextmanager
async def running_adapter(
    settings: Settings, ready_timeout_s: float = 30.0
) -> AsyncIterator[Adapter]:
    """The service (HTTP + MLLP) running in this event loop until the block ends."""
    config = uvicorn.Config(
        build(settings),
        host="127.0.0.1",
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=15.0, headers=auth.HEADERS) as http:
        try:
            async with asyncio.timeout(ready_timeout_s):
                while True:
                    if task.done():
                        task.result()  # raises what stopped it
                        raise AssertionError("the adapter stopped during start-up")
                    try:
                        if (await http.get("/health/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            yield Adapter(settings, http)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)


def siu_message(
    control_id: str,
    slot: str = "20250310091500-0600",
    pid: str = "PID|1||MRN-1001^^^SITE01^MR||DOE^JANE||19800101|F",
) -> bytes:
    """A small SIU^S12 (v2.5.1) with a unique control id; ``slot=""`` leaves it without one."""
    npi = "1234567893^SMITH^ANNA^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI"
    return "\r".join(
        [
            "MSH|^~\\&|CADENCE|SITE01|CAREBUS|CAREBUS|20250301120000-0600||SIU^S12|"
            f"{control_id}|P|2.5.1",
            f"SCH|P-{control_id}|F-{control_id}|||||CHECKUP^Annual check-up|ROUTINE|30|min|"
            f"^^30^{slot}",
            pid,
            f"PV1|1|O|CLINIC-A^101^^SITE01||||{npi}",
            f"AIS|1|A|99213^Office visit^CPT|{slot}|||30|min",
        ]
    ).encode()


# -- MLLP -------------------------------------------------------------------------------------
def wire_message(raw: bytes) -> bytes:
    """A sample file as one MLLP payload: no BOM, CR segment separators, no blank lines."""
    text = raw.removeprefix(b"\xef\xbb\xbf")
    return b"\r".join(s for s in re.split(rb"\r\n|\r|\n", text) if s.strip())


class MllpClient:
    """A minimal original-mode sender: one message, then wait for its ACK."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> MllpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, payload: bytes, timeout_s: float = 10.0) -> bytes:
        self._writer.write(frame(payload))
        await self._writer.drain()
        async with asyncio.timeout(timeout_s):
            data = await self._reader.readuntil(FS + b"\r")
        return data.strip(VT + FS + b"\r")

    async def close(self) -> None:
        self._writer.close()
        with suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


@dataclass(frozen=True)
class Ack:
    code: str
    control_id: str | None
    text: str | None
    error_location: str | None
    error_code: str | None


def read_ack(raw: bytes) -> Ack:
    ack = parse_message(raw)
    msa = ack.segment("MSA")
    assert msa is not None, raw
    err = ack.segment("ERR")
    location = None
    if err is not None:
        parts = [err.value(2, n) for n in (1, 2, 3)]
        segment, _, field = parts
        location = f"{segment}-{field}" if field else segment
    return Ack(
        code=msa.value(1) or "",
        control_id=msa.value(2),
        text=msa.value(3),
        error_location=location,
        error_code=err.value(3) if err is not None else None,
    )


# -- the SCHEDULING stream ----------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    subject: str
    msg_id: str
    event: dict[str, Any]


async def stored_events(nats_url: str) -> list[Stored]:
    """Every message in the SCHEDULING stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(STREAM_SCHEDULING)).state
        found: list[Stored] = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            msg = await js.get_msg(STREAM_SCHEDULING, seq)
            headers = msg.headers or {}
            assert msg.subject is not None
            assert msg.data is not None
            event = msgspec.json.decode(msg.data)
            found.append(Stored(msg.subject, headers["Nats-Msg-Id"], event))
        return found
    finally:
        await nc.close()


async def stream_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(STREAM_SCHEDULING)).state.messages
    finally:
        await nc.close()


# -- the exception store ---------------------------------------------------------------------
async def kept_records(database_url: str, source: str, raw: bytes) -> list[dict[str, Any]]:
    """Exception records this adapter kept for exactly these input bytes."""
    digest = hashlib.sha256(raw).hexdigest()
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT * FROM carebus_exceptions.exception_record "
            "WHERE dedupe_key LIKE $1 ORDER BY id",
            f"{STAGE}:{source}:{digest}:%",
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def record_by_id(database_url: str, record_id: int) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT * FROM carebus_exceptions.exception_record WHERE id = $1", record_id
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)
