"""A replay is audited when it starts and when it ends, under its actor, on a real NATS and
PostgreSQL. (The pipeline's own topology is used without the ops tracker's durables, which
a replay refuses to share a stream with: see tests/replay.)"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import nats
import pytest

from carebus_shared import audit
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.jetstream.window import Window
from carebus_shared.replay import records, use_case
from carebus_shared.replay.progress import Lines
from carebus_shared.replay.use_case import Request
from tests.support.service_process import provision_topology
from tests.support.stacks import own_database

PIPELINE_ONLY = replace(
    TOPOLOGY, consumers=tuple(c for c in TOPOLOGY.consumers if not c.durable.startswith("ops-"))
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    async with own_database(database_url, "carebus_audit_replay") as url:
        conn = await asyncpg.connect(url)
        try:
            for owner, package in ((records.OWNER, records.PACKAGE), (audit.OWNER, audit.PACKAGE)):
                await migrate(conn, owner, load_migrations(package))
        finally:
            await conn.close()
        yield url


async def test_a_replay_is_audited_at_its_start_and_its_end(
    private_nats: NatsServer, db: str
) -> None:
    await provision_topology(private_nats.url, PIPELINE_ONLY)
    nc = await nats.connect(private_nats.url)
    conn = await asyncpg.connect(db)
    try:
        js = nc.jetstream()
        for n in range(3):
            headers = {"Nats-Msg-Id": f"evt-{n}", "Carebus-Schema-Version": "1.0"}
            await js.publish("billing.charge.posted.v1.SITE01", b"{}", headers=headers)
        planned = await use_case.plan(js, Request("BILLING", "validator", Window(from_seq=1)))
        result = await use_case.replay(js, conn, planned, "ops-alice", Lines(io.StringIO()))
        found = await audit.entries(conn, action="replay")
        assert await audit.verify(conn) is None
    finally:
        await conn.close()
        await nc.close()
    assert result.outcome == "completed"
    assert [(e.actor, e.target_id, e.outcome) for e in reversed(found)] == [
        ("ops-alice", str(result.replay_id), "started"),
        ("ops-alice", str(result.replay_id), "completed"),
    ]
    end = audit.detail_of(found[0])
    assert (end["stream"], end["expected"], end["republished"]) == ("BILLING", 3, 3)
