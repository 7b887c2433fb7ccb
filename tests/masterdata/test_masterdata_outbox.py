"""A committed change cannot be lost between the database and NATS (transactional outbox)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from prometheus_client import CollectorRegistry

from carebus_contracts.masterdata import Provider
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.outbox import OutboxDrainer
from carebus_masterdata_validator.config import PACKAGE, SCHEMA
from carebus_masterdata_validator.domain.kinds import BY_NAME
from carebus_masterdata_validator.domain.view import decode_change
from carebus_masterdata_validator.handlers.masterdata import Caller, MasterData
from carebus_shared import audit
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import MASTERDATA_VIEW_BUCKET, TOPOLOGY
from tests.support.masterdata import VALID_NPIS


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"md_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "carebus_exceptions", load_migrations("carebus_shared.exceptions"))
        # Master-data changes are audited in the change's own transaction.
        await migrate(conn, audit.OWNER, load_migrations(audit.PACKAGE))
        await migrate(conn, SCHEMA, load_migrations(PACKAGE))
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    yield pool
    await pool.close()
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def test_a_change_committed_while_nats_is_away_is_published_once_later(
    pool: asyncpg.Pool, private_nats: NatsServer
) -> None:
    metrics = ValidatorMetrics(CollectorRegistry())
    service = MasterData(lambda: pool, lambda: None, metrics)
    provider = Provider(provider_id="P-OUT", npi=VALID_NPIS[0], name="Outbox")
    # No NATS involved: the change, its audit row and its outbox row commit together.
    await service.create(BY_NAME["provider"], provider, Caller("steward", "req-1"))
    async with pool.acquire() as conn:
        queued = await conn.fetch(f"SELECT * FROM {SCHEMA}.outbox")
    assert len(queued) == 1

    nc = await nats.connect(private_nats.url)
    try:
        js = nc.jetstream()
        await provision(js, TOPOLOGY)
        drainer = OutboxDrainer(lambda: pool, lambda: js, MASTERDATA_VIEW_BUCKET, metrics)
        assert await drainer.drain_once() == 1
        assert await drainer.drain_once() == 0

        # A crash after the publish but before the delete leaves the row: it goes again,
        # and JetStream's duplicate window keeps one copy.
        async with pool.acquire() as conn:
            row = queued[0]
            await conn.execute(
                f"INSERT INTO {SCHEMA}.outbox (subject, msg_id, headers, payload, kv_key) "
                "VALUES ($1, $2, $3, $4, $5)",
                row["subject"],
                row["msg_id"],
                row["headers"],
                row["payload"],
                row["kv_key"],
            )
        assert await drainer.drain_once() == 1

        info = await js.stream_info("MASTERDATA")
        assert info.state.messages == 1
        kv = await js.key_value(MASTERDATA_VIEW_BUCKET)
        entry = await kv.get(BY_NAME["provider"].kv_key("P-OUT"))
        change = decode_change(entry.value or b"")
        assert change.entity_version == 1
        assert change.provider == provider  # type: ignore[union-attr]
    finally:
        await nc.close()
