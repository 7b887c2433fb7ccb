"""A migrated database of each test module's own, and a connection to it per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.erp_poster import migrated, private_database


@pytest.fixture(scope="module")
async def poster_db(database_url: str) -> AsyncIterator[str]:
    async for dsn in private_database(database_url):
        await migrated(dsn)
        yield dsn


@pytest.fixture
async def conn(poster_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(poster_db)
    try:
        yield conn
    finally:
        await conn.close()
