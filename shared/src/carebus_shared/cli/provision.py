"""`carebus provision`: apply the JetStream topology and every service's database migrations."""

from __future__ import annotations

import asyncpg

from carebus_shared import audit
from carebus_shared.auth import store as auth_store
from carebus_shared.cli.services import discover
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.exceptions import store as exception_store
from carebus_shared.jetstream.connection import connect as connect_nats
from carebus_shared.jetstream.provision import Change, provision
from carebus_shared.jetstream.topology import TOPOLOGY, Topology
from carebus_shared.reconcile import store as reconcile_store
from carebus_shared.replay import records as replays


def schema_owners() -> list[tuple[str, str]]:
    """(schema, package) of every migration set: the shared runtime's, then each service's."""
    owners = [
        (auth_store.OWNER, auth_store.PACKAGE),
        (exception_store.OWNER, "carebus_shared.exceptions"),
        (reconcile_store.OWNER, reconcile_store.PACKAGE),
        (replays.OWNER, replays.PACKAGE),
        (audit.OWNER, audit.PACKAGE),
    ]
    return owners + [(service.schema, service.package) for service in discover()]


async def provision_all(
    nats_url: str, database_url: str, replicas: int = 1, topology: Topology = TOPOLOGY
) -> list[str]:
    """Apply everything; return one report line per stream, consumer, bucket and schema."""
    nc = await connect_nats(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        changes: list[Change] = await provision(nc.jetstream(), topology, replicas)
    finally:
        await nc.close()
    lines = [str(change) for change in changes]
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        for owner, package in schema_owners():
            applied = await migrate(conn, owner, load_migrations(package))
            action = f"applied {', '.join(applied)}" if applied else "unchanged"
            lines.append(f"{'schema':8} {owner:40} {action}")
    finally:
        await conn.close()
    return lines
