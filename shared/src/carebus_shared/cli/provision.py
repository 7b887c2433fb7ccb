"""`carebus provision`: apply the JetStream topology and every service's database migrations,
and (docs/decisions/026) the owner role and one login role per service."""

from __future__ import annotations

import os
from collections.abc import Mapping

import asyncpg

from carebus_shared import audit
from carebus_shared.auth import store as auth_store
from carebus_shared.cli.services import discover
from carebus_shared.db import roles
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


def service_roles() -> list[roles.ServiceRole]:
    """Each service's login role: named like its schema; its config may name tables it only
    appends to (``APPEND_ONLY_TABLES``) and other schemas' tables it reads (``READS``)."""
    return [
        roles.ServiceRole(
            role=service.schema,
            schema=service.schema,
            append_only=tuple(getattr(service.config, "APPEND_ONLY_TABLES", ())),
            reads=tuple(getattr(service.config, "READS", ())),
        )
        for service in discover()
    ]


async def provision_all(
    nats_url: str,
    database_url: str,
    replicas: int = 1,
    topology: Topology = TOPOLOGY,
    *,
    with_roles: bool = True,
    passwords: Mapping[str, str] | None = None,
) -> list[str]:
    """Apply everything; return one report line per stream, consumer, bucket, schema and
    role. Role passwords come from ``passwords``, else ``$CAREBUS_PG_PASSWORD_<ROLE>``; a
    role with neither keeps the password it has. ``with_roles=False``: migrations only,
    as the connected user (an administrator that may not create roles)."""
    nc = await connect_nats(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        changes: list[Change] = await provision(nc.jetstream(), topology, replicas)
    finally:
        await nc.close()
    lines = [str(change) for change in changes]
    return lines + await provision_database(
        database_url, with_roles=with_roles, passwords=passwords
    )


async def provision_database(
    database_url: str, *, with_roles: bool = True, passwords: Mapping[str, str] | None = None
) -> list[str]:
    """The database part of `provision_all`."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await _provision_database(conn, with_roles, passwords)
    finally:
        await conn.close()


async def _provision_database(
    conn: asyncpg.Connection, with_roles: bool, passwords: Mapping[str, str] | None
) -> list[str]:
    lines = []
    if with_roles:
        await roles.ensure_owner(conn)
    for owner, package in schema_owners():
        # Objects made before the owner role existed change hands first.
        adopted = await roles.adopt_schema(conn, owner) if with_roles else 0
        applied = await migrate(
            conn, owner, load_migrations(package), as_role=roles.OWNER_ROLE if with_roles else None
        )
        action = f"applied {', '.join(applied)}" if applied else "unchanged"
        if adopted:
            action += f"; {adopted} object(s) now owned by {roles.OWNER_ROLE}"
        lines.append(f"{'schema':8} {owner:40} {action}")
    if not with_roles:
        return lines
    wanted = service_roles()
    known = (
        dict(passwords)
        if passwords is not None
        else roles.passwords_from_env([r.role for r in wanted], os.environ)
    )
    for service_role in wanted:
        done = await roles.ensure_service_role(conn, service_role, known.get(service_role.role))
        lines.append(f"{'role':8} {service_role.role:40} {done}")
    return lines
