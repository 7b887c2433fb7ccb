"""Shared helpers of the ERP poster tests: journals, a private database, a test topology with
short redelivery steps, and the poster and the ERP sandbox as real processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.envelope import Money
from carebus_contracts.erp import JournalEntryRequested, JournalLine, Side
from carebus_contracts.examples import build_examples
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.ports import free_port
from carebus_shared.exceptions import store as exception_store
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import ERP_POSTER, TOPOLOGY, Topology
from tests.support import auth
from tests.support.service_process import ServiceProcess

EXAMPLE = next(e for e, _ in build_examples() if isinstance(e, JournalEntryRequested))


def journal(
    run: str,
    i: int,
    *,
    amount_minor: int = 12_500,
    accounts: tuple[str, str] = ("1200", "4000"),
    posting_date: dt.date = dt.date(2025, 3, 14),
    credit_minor: int | None = None,
    event_suffix: str = "",
) -> JournalEntryRequested:
    """A balanced two-line journal (unless ``credit_minor`` says otherwise), unique per run/i."""
    debit, credit = EXAMPLE.lines
    lines = (
        replace_line(debit, accounts[0], amount_minor),
        replace_line(credit, accounts[1], amount_minor if credit_minor is None else credit_minor),
    )
    return msgspec.structs.replace(
        EXAMPLE,
        event_id=f"evt-{run}-{i}{event_suffix}",
        journal_id=f"JE-{run}-{i}",
        entity_key=f"JE-{run}-{i}",
        correlation_id=f"corr-{run}-{i}",
        posting_date=posting_date,
        lines=lines,
    )


def replace_line(line: JournalLine, account: str, amount_minor: int) -> JournalLine:
    return msgspec.structs.replace(
        line, account=account, amount=Money(amount_minor=amount_minor, currency="USD")
    )


assert EXAMPLE.lines[0].side is Side.DEBIT


async def publish_journals(js: JetStreamContext, journals: Sequence[JournalEntryRequested]) -> None:
    outgoing = [Outgoing(subject_for(j), encode(j), j.event_id, headers_for(j)) for j in journals]
    for start in range(0, len(outgoing), 500):
        await publish_confirmed(js, outgoing[start : start + 500], timeout_s=30)


def short_topology(
    backoff_s: tuple[float, ...] = (2.0, 2.0, 4.0), max_deliver: int | None = None
) -> Topology:
    """The suite's topology with short redelivery steps for the poster's consumer (and, when
    given, another allowance of deliveries)."""
    poster = TOPOLOGY.consumer(ERP_POSTER)
    shortened = replace(poster, backoff_s=backoff_s, max_deliver=max_deliver or poster.max_deliver)
    consumers = tuple(shortened if c.durable == ERP_POSTER else c for c in TOPOLOGY.consumers)
    return replace(TOPOLOGY, consumers=consumers)


async def provision_short(
    nats_url: str, backoff_s: tuple[float, ...] = (2.0, 2.0, 4.0), max_deliver: int | None = None
) -> None:
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream(), short_topology(backoff_s, max_deliver))
    finally:
        await nc.close()


async def fresh_database(server_dsn: str) -> str:
    """A new, empty database on the session's PostgreSQL: no test sees another's ledger."""
    name = f"erp_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_dsn.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(server_dsn: str, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, every_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def subject_counts(js: JetStreamContext, pattern: str) -> int:
    info = await js.stream_info("ERP", subjects_filter=pattern)
    return sum((info.state.subjects or {}).values())


async def consumer_idle(js: JetStreamContext) -> bool:
    info = await js.consumer_info("ERP", ERP_POSTER)
    return (info.num_pending or 0) == 0 and (info.num_ack_pending or 0) == 0


def poster_process(
    nats_url: str,
    database_url: str,
    log: Path,
    *,
    module: str = "carebus_erp_poster.entrypoints.cli",
    env: dict[str, str] | None = None,
    **settings: str | int | float,
) -> ServiceProcess:
    """The poster as a child process; ``module`` runs another script of it (fault injection)
    with ``env`` added to its environment."""
    port = free_port()
    environment = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CAREBUS_SHUTDOWN_GRACE_S": "5",
        "CAREBUS_ERP_POSTER_HTTP_PORT": str(port),
        "CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S": "0.5",
        "CAREBUS_ERP_POSTER_CONFIRM_POLL_S": "0.3",
        **{f"CAREBUS_ERP_POSTER_{k.upper()}": str(v) for k, v in settings.items()},
        **(env or {}),
    }
    argv = [sys.executable, "-m", module, "serve"]
    return ServiceProcess(argv, environment, port, log)


class Sandbox:
    """The ERP sandbox as a child process, with its control panel."""

    def __init__(self, database_url: str, log: Path, **settings: str | int | float) -> None:
        self.port = free_port()
        env = {
            "DATABASE_URL": database_url,
            "CAREBUS_ERP_SANDBOX_HTTP_PORT": str(self.port),
            "CAREBUS_ERP_SANDBOX_LATENCY_MS": "2",
            "CAREBUS_ERP_SANDBOX_LATENCY_JITTER_MS": "1",
            **{f"CAREBUS_ERP_SANDBOX_{k.upper()}": str(v) for k, v in settings.items()},
        }
        argv = [sys.executable, "-m", "carebus_erp_sandbox.cli", "serve"]
        self.process = ServiceProcess(argv, env, self.port, log)
        self.database_url = database_url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 30.0) -> None:
        self.process.start()

        async def live() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/health/live")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(live, timeout_s, "the ERP sandbox to listen")

    def stop(self) -> None:
        self.process.kill()

    async def control(self, method: str, path: str, **body: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, headers=auth.HEADERS) as client:
            response = await client.request(method, path, json=body or None)
            response.raise_for_status()
            return response.json() if response.content else None

    async def requests(self, since: float = 0.0) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url, headers=auth.HEADERS) as client:
            response = await client.get("/sandbox/requests", params={"since": since})
            return list(response.json())


async def wait_ready(process: ServiceProcess, timeout_s: float = 60.0) -> None:
    async def ready() -> bool:
        return await asyncio.to_thread(process.ready)

    await eventually(ready, timeout_s, f"the poster ready (log: {process.log_path})", 0.3)


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def scalar(database_url: str, sql: str, *args: Any) -> Any:
    rows = await query(database_url, sql, *args)
    return rows[0][0] if rows else None


async def migrated(database_url: str) -> None:
    """Apply the exception store's and the poster's migrations, as the service does."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, exception_store.OWNER, load_migrations("carebus_shared.exceptions"))
        await migrate(conn, "carebus_erp_poster", load_migrations("carebus_erp_poster"))
    finally:
        await conn.close()


async def table_exists(database_url: str, name: str) -> bool:
    return bool(await scalar(database_url, "SELECT to_regclass($1) IS NOT NULL", name))


async def private_database(server_dsn: str) -> AsyncIterator[str]:
    """Fixture body: a fresh database, dropped afterwards."""
    dsn = await fresh_database(server_dsn)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)
