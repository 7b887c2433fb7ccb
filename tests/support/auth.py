"""The tests' HTTP credential: one client with every scope, in every test database.

``grant_everywhere`` puts it in the server's template database (so each database a test
creates has it) and in the session's own; every HTTP call sends ``HEADERS``. Tests that
check refusals make clients of their own with ``grant``.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

import asyncpg

from carebus_shared.auth import scopes, store
from carebus_shared.auth.client import bearer
from carebus_shared.auth.keys import new_key
from carebus_shared.db.migrations import load_migrations, migrate

NAME: Final = "tests"
KEY: Final = new_key()  # one per test session
HEADERS: Final = bearer(KEY)
# High enough that no test is throttled unless it means to be.
RATE_PER_S: Final = 100_000.0
BURST: Final = 100_000


async def grant(
    database_url: str,
    *,
    name: str = NAME,
    granted: tuple[str, ...] = scopes.ALL,
    key: str = KEY,
    rate_per_s: float | None = RATE_PER_S,
    burst: int | None = BURST,
) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, store.OWNER, load_migrations(store.PACKAGE))
        await store.put(conn, name, granted, key, rate_per_s=rate_per_s, burst=burst)
    finally:
        await conn.close()
    return key


def _on(database_url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(database_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


async def grant_everywhere(database_url: str, *, template: bool) -> None:
    if template:
        await grant(_on(database_url, "template1"))
    await grant(database_url)


async def client(database_url: str, name: str, granted: tuple[str, ...] = scopes.ALL) -> str:
    """A client of a test's own (its name is the actor recorded); returns its key."""
    return await grant(database_url, name=name, granted=granted, key=new_key())
