"""Who acted, and from where, when the web console forwards an action (issue #17, Audit):
a person signed in to /console/ re-drives an input the scheduling adapter kept and discards
an appointment the validator parked. The adapter and the validator record those acts; their
audit entries must name the person and the person's own address (the browser's), not the
console's. The client here connects from 127.0.0.2, the console and the services listen on
127.0.0.1, so the two addresses differ. `carebus audit verify` then holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from carebus_scenario.stack import ServiceStack, provision_stack
from carebus_shared import audit
from carebus_shared.auth.guard import CSRF_FIELD, csrf_token
from carebus_shared.auth.scopes import ROLES
from carebus_shared.devstack.nats_server import NatsServer
from tests.support import auth
from tests.support.scheduling import MllpClient, siu_message
from tests.support.stacks import own_database

pytestmark = pytest.mark.slow

PERSON = "erin.ops"
BROWSER = "127.0.0.2"  # where the person's browser is, as the console sees it
NAMES = ("scheduling-adapter", "masterdata-validator", "ops-console")


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    async with own_database(database_url, "carebus_console_audit") as db:
        await provision_stack(private_nats.url, db)
        services = ServiceStack(private_nats.url, db, tmp_path)
        services.env["ops-console"] |= {
            "CAREBUS_OPS_CONSOLE_SCHEDULING_ADAPTER_URL": services.http("scheduling-adapter"),
            "CAREBUS_OPS_CONSOLE_VALIDATOR_URL": services.http("masterdata-validator"),
        }
        try:
            await asyncio.to_thread(services.start, NAMES)
            yield services
        finally:
            await asyncio.to_thread(services.stop)


async def _eventually_one(conn: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    for _ in range(150):  # bounded: 30 s
        row = await conn.fetchrow(query, *args)
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing for {query}")


async def test_a_forwarded_redrive_and_discard_are_audited_with_the_person_and_their_address(
    stack: ServiceStack,
) -> None:
    db = stack.database_url
    key = await auth.client(db, PERSON, ROLES["operator"])
    # Refused at intake (no slot): the adapter keeps it; a valid one is parked (no master data).
    mllp = await MllpClient.connect(stack.endpoints.scheduling_mllp[1])
    try:
        await mllp.send(siu_message("AUD-1", slot=""))
        await mllp.send(siu_message("AUD-2"))
    finally:
        await mllp.close()
    conn = await asyncpg.connect(db)
    try:
        kept = await _eventually_one(
            conn, "SELECT id FROM carebus_exceptions.exception_record "
            "WHERE stage = 'scheduling_adapter' AND status = 'open'",
        )  # fmt: skip
        parked = await _eventually_one(
            conn, "SELECT id FROM carebus_masterdata_validator.parked_event LIMIT 1"
        )
    finally:
        await conn.close()

    transport = httpx.AsyncHTTPTransport(local_address=BROWSER)
    async with httpx.AsyncClient(
        base_url=stack.http("ops-console"), transport=transport, timeout=30
    ) as browser:
        signed_in = await browser.post("/console/login", data={"key": key, "next": "/console/"})
        assert signed_in.status_code == 303, signed_in.text
        form = {CSRF_FIELD: csrf_token(key), "confirmed": "yes"}
        corrected = siu_message("AUD-1").decode()
        redriven = await browser.post(
            f"/console/exceptions/{kept['id']}/redrive", data={**form, "corrected_text": corrected}
        )
        assert redriven.status_code == 200, redriven.text
        assert "Re-driven" in redriven.text or "redriven" in redriven.text, redriven.text
        discarded = await browser.post(
            f"/console/quarantine/{parked['id']}/discard", data={**form, "note": "test entry"}
        )
        assert discarded.status_code == 200, discarded.text
        assert "Discarded" in discarded.text, discarded.text

    conn = await asyncpg.connect(db)
    try:
        mine = await audit.entries(conn, actor=PERSON, limit=50)
    finally:
        await conn.close()
    acts = {(e.action, e.target_kind, e.target_id): e for e in mine}
    redrive = acts[("redrive", "exception_record", str(kept["id"]))]
    discard = acts[("discard", "parked_event", str(parked["id"]))]
    assert (redrive.origin.split("@")[0], redrive.outcome) == ("scheduling-adapter", "redriven")
    assert discard.origin.split("@")[0] == "masterdata-validator"
    assert (redrive.client_address, discard.client_address) == (BROWSER, BROWSER)

    verified = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("carebus")), "audit", "verify"],
        env={**os.environ, "DATABASE_URL": db}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain verified" in verified.stdout
