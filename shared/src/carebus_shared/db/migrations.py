"""Ordered SQL migrations per service, each service owning its own schema.

Files are ``NNN_description.sql`` in a package folder. Applied versions are tracked in
``public.carebus_migrations`` with a checksum; a session-level advisory lock serialises
replicas starting at once, so running migrations twice, or concurrently, is safe. An edited
file that was already applied is refused: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

_FILE_RE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x0CA4EB05  # any constant; all carebus services take the same lock

TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS public.carebus_migrations (
    owner       text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, version)
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """The migrations shipped in ``package``/``folder``, in version order."""
    found = []
    for entry in resources.files(package).joinpath(folder).iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{package}: two migrations share a version number")
    return found


async def _applied(conn: Any, owner: str) -> dict[int, Any]:
    if await conn.fetchval("SELECT to_regclass('public.carebus_migrations')") is None:
        return {}
    rows = await conn.fetch(
        "SELECT version, name, checksum FROM public.carebus_migrations WHERE owner = $1", owner
    )
    return {row["version"]: row for row in rows}


def _unapplied(owner: str, migrations: list[Migration], done: dict[int, Any]) -> list[Migration]:
    """The migrations not in ``done``; an applied one whose file changed is refused."""
    for migration in migrations:
        previous = done.get(migration.version)
        if previous is not None and previous["checksum"] != migration.checksum:
            raise MigrationError(
                f"{owner}: {migration.name} changed after it was applied; "
                "add a new migration instead"
            )
    return [m for m in migrations if m.version not in done]


async def pending(conn: Any, owner: str, migrations: list[Migration]) -> list[str]:
    """The names of ``owner``'s migrations not applied yet. Reads only: a service's role,
    which may not create anything (docs/decisions/026), checks at start with this."""
    return [m.name for m in _unapplied(owner, migrations, await _applied(conn, owner))]


async def migrate(
    conn: Any, owner: str, migrations: list[Migration], *, as_role: str | None = None
) -> list[str]:
    """Apply the migrations of ``owner`` not yet applied; return the names applied now.

    With ``as_role``, each migration runs under that role (SET LOCAL ROLE), which then owns
    what it creates; the tracking row is written as the connected user.
    """
    applied_now: list[str] = []
    if not await pending(conn, owner, migrations):
        return applied_now  # nothing to do, and no lock or DDL a reader may not take
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(TRACKING_TABLE)
        # Again under the lock: a replica starting beside us may have applied some.
        for migration in _unapplied(owner, migrations, await _applied(conn, owner)):
            async with conn.transaction():
                if as_role is not None:
                    await conn.execute(f'SET LOCAL ROLE "{as_role}"')
                await conn.execute(migration.sql)
                if as_role is not None:
                    await conn.execute("RESET ROLE")
                await conn.execute(
                    "INSERT INTO public.carebus_migrations (owner, version, name, checksum) "
                    "VALUES ($1, $2, $3, $4)",
                    owner,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate_url(database_url: str, owner: str, package: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn, owner, load_migrations(package))
    finally:
        await conn.close()
