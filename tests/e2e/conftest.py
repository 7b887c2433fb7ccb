"""The end-to-end stack: all five services as separate processes, on a NATS server and a
database of the test's own (what the suite holds is exactly what the test put there). The
ERP poster's and the mapper's ack deadlines are shortened to 5 s (production: 30 s) so that
the messages a killed one held come back quickly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from carebus_scenario.config import SMALL
from carebus_scenario.stack import ServiceStack, fresh_database, provision_stack, with_ack_wait
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import ERP_POSTER, MAPPER, TOPOLOGY

SHORT_BACKOFF_S = (5.0, 10.0, 20.0, 60.0)


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    name = f"carebus_e2e_{uuid.uuid4().hex[:8]}"
    db = await fresh_database(database_url, name)
    topology = with_ack_wait(TOPOLOGY, ERP_POSTER, SHORT_BACKOFF_S)
    await provision_stack(private_nats.url, db, with_ack_wait(topology, MAPPER, SHORT_BACKOFF_S))
    services = ServiceStack(
        private_nats.url,
        db,
        tmp_path,
        remittance_site=SMALL.remittance_site,
        extra_env={"erp-poster": {"CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S": "1"}},
    )
    try:
        await asyncio.to_thread(services.start)
        yield services
    finally:
        await asyncio.to_thread(services.stop)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
