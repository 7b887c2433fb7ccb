"""A database of a test's own, and the five services running on it as processes (the
end-to-end tests' suite): created, provisioned, started, and gone afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from carebus_scenario.config import SMALL
from carebus_scenario.stack import ServiceStack, fresh_database, provision_stack
from carebus_shared.cli.services import discover
from carebus_shared.db.roles import database_url_as
from carebus_shared.jetstream.topology import TOPOLOGY, Topology


@asynccontextmanager
async def own_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url``; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = await fresh_database(server_url, name)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def running_stack(
    server_url: str,
    nats_url: str,
    workdir: Path,
    *,
    topology: Topology = TOPOLOGY,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
    database_roles: bool = False,
    stream_replicas: int = 1,
    instances: Mapping[str, int] | None = None,
) -> AsyncIterator[ServiceStack]:
    """The five services on a database of their own and ``nats_url`` (provisioned with
    ``topology``, each stream on ``stream_replicas`` servers), filing remittances under the
    SMALL scenario's site; ``instances`` runs that many of a service (replicas sharing its
    durables). With ``database_roles`` each service logs in as its own role
    (docs/decisions/026; the test server trusts logins, so without a password), else as the
    administrator."""
    async with own_database(server_url, "carebus_e2e") as db:
        await provision_stack(nats_url, db, topology, stream_replicas)
        env = {name: dict(values) for name, values in (extra_env or {}).items()}
        if database_roles:
            for service in discover():
                env.setdefault(service.name, {})["DATABASE_URL"] = database_url_as(
                    db, service.schema, None
                )
        services = ServiceStack(
            nats_url, db, workdir, remittance_site=SMALL.remittance_site, extra_env=env
        )
        for name, count in (instances or {}).items():
            for index in range(2, count + 1):
                services.add_replica(name, index)
        try:
            await asyncio.to_thread(services.start)
            yield services
        finally:
            await asyncio.to_thread(services.stop)
