"""Migrations: ordered, tracked, safe to run twice or concurrently, edits refused."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from carebus_shared.db.migrations import Migration, MigrationError, load_migrations, migrate


def _owner() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


def _migrations(owner: str) -> list[Migration]:
    return [
        Migration(1, "001_schema.sql", f"CREATE SCHEMA {owner}"),
        Migration(2, "002_table.sql", f"CREATE TABLE {owner}.t (id int PRIMARY KEY)"),
    ]


async def test_running_twice_applies_once(database_url: str) -> None:
    owner = _owner()
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, owner, _migrations(owner)) == ["001_schema.sql", "002_table.sql"]
        assert await migrate(conn, owner, _migrations(owner)) == []
        rows = await conn.fetch(
            "SELECT version FROM public.carebus_migrations WHERE owner = $1 ORDER BY 1", owner
        )
        assert [r["version"] for r in rows] == [1, 2]
    finally:
        await conn.close()


async def test_concurrent_runs_do_not_collide(database_url: str) -> None:
    owner = _owner()
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, owner, _migrations(owner)) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 2]
    finally:
        for conn in conns:
            await conn.close()


async def test_an_applied_migration_that_changed_is_refused(database_url: str) -> None:
    owner = _owner()
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, owner, _migrations(owner))
        edited = _migrations(owner)
        edited[1] = Migration(2, "002_table.sql", f"CREATE TABLE {owner}.t (id bigint)")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, owner, edited)
    finally:
        await conn.close()


def test_every_service_ships_ordered_migrations() -> None:
    for package in (
        "carebus_shared.exceptions",
        "carebus_shared.replay",
        "carebus_scheduling_adapter",
        "carebus_billing_adapter",
        "carebus_masterdata_validator",
        "carebus_mapper",
        "carebus_erp_poster",
    ):
        found = load_migrations(package)
        assert found, package
        assert [m.version for m in found] == sorted(m.version for m in found)
