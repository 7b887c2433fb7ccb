"""PostgreSQL least privilege (docs/decisions/026): `carebus provision` makes an owner role
and one login role per service; each service's role reaches its own schema and the shared
exception store and audit log, and the poster's role may add to the ledger but not change it,
nor switch its append-only triggers off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from carebus_shared import audit
from carebus_shared.cli.provision import provision_database, schema_owners
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.db.roles import OWNER_ROLE, database_url_as
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.store import ExceptionRecord
from tests.support.stacks import own_database

POSTER = "carebus_erp_poster"
MAPPER = "carebus_mapper"


@pytest.fixture
async def provisioned(database_url: str) -> AsyncIterator[str]:
    async with own_database(database_url, "carebus_roles") as db:
        await provision_database(db, passwords={})
        yield db


@pytest.fixture
async def as_poster(provisioned: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url_as(provisioned, POSTER, None))
    yield conn
    await conn.close()


async def _post_entry(conn: asyncpg.Connection, key: str) -> int:
    async with conn.transaction():
        entry_id: int = await conn.fetchval(
            "INSERT INTO carebus_erp_poster.journal_entry (idempotency_key, journal_id, company, "
            "site, posting_date, description, source_event_id, correlation_id) "
            "VALUES ($1, $1, 'C1', 'S1', '2025-03-14', 'test', 'evt', 'corr') RETURNING entry_id",
            key,
        )
        await conn.execute(
            "INSERT INTO carebus_erp_poster.journal_line "
            "(entry_id, line_number, account, side, amount_minor, currency) "
            "VALUES ($1, 1, '1200', 'debit', 500, 'EUR'), ($1, 2, '4000', 'credit', 500, 'EUR')",
            entry_id,
        )
    return entry_id


async def test_every_schema_and_object_belongs_to_the_owner_role(provisioned: str) -> None:
    conn = await asyncpg.connect(provisioned)
    try:
        schemas = [owner for owner, _ in schema_owners()]
        owners = await conn.fetch(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1::text[])",
            schemas,
        )
        assert [r["owner"] for r in owners] == [OWNER_ROLE]
        trigger_owner = await conn.fetchval(
            "SELECT pg_get_userbyid(c.relowner) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'journal_entry_append_only'"
        )
        assert trigger_owner == OWNER_ROLE
        assert not await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", POSTER, OWNER_ROLE)
    finally:
        await conn.close()


async def test_the_mapper_cannot_touch_the_ledger(provisioned: str) -> None:
    conn = await asyncpg.connect(database_url_as(provisioned, MAPPER, None))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO carebus_erp_poster.inbox (consumer, event_id, journal_id) "
                "VALUES ('c', 'e', 'j')"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM carebus_erp_poster.journal_entry")
        # Its own schema it reads and writes.
        await conn.execute(
            "INSERT INTO carebus_mapper.entity_version (site, entity, entity_key, entity_version, "
            "source_event_id) VALUES ('S1', 'claim', 'k1', 1, 'evt')"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE carebus_mapper.extra (id int)")
    finally:
        await conn.close()


async def test_the_poster_appends_to_the_ledger_and_can_change_nothing(
    as_poster: asyncpg.Connection,
) -> None:
    entry_id = await _post_entry(as_poster, "JE-roles-1")
    refused = (
        "UPDATE carebus_erp_poster.journal_entry SET description = 'x'",
        "DELETE FROM carebus_erp_poster.journal_line",
        "TRUNCATE carebus_erp_poster.journal_line, carebus_erp_poster.journal_entry",
        "ALTER TABLE carebus_erp_poster.journal_entry DISABLE TRIGGER journal_entry_append_only",
        "ALTER TABLE carebus_erp_poster.journal_line DISABLE TRIGGER USER",
        "DROP TRIGGER journal_entry_append_only ON carebus_erp_poster.journal_entry",
        "DROP FUNCTION carebus_erp_poster.refuse_ledger_change() CASCADE",
        "CREATE OR REPLACE FUNCTION carebus_erp_poster.refuse_ledger_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        f'SET ROLE "{OWNER_ROLE}"',
        "SET session_replication_role = replica",
    )
    for statement in refused:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_poster.execute(statement)
    assert (
        await as_poster.fetchval(
            "SELECT count(*) FROM carebus_erp_poster.journal_line WHERE entry_id = $1", entry_id
        )
        == 2
    )
    # Its exactly-once tables are its own to keep.
    await as_poster.execute(
        "INSERT INTO carebus_erp_poster.inbox (consumer, event_id, journal_id) "
        "VALUES ('c', 'e', 'j')"
    )
    await as_poster.execute("DELETE FROM carebus_erp_poster.inbox WHERE consumer = 'c'")


async def test_a_service_role_records_exceptions_and_appends_audit_entries_only(
    provisioned: str,
) -> None:
    conn = await asyncpg.connect(database_url_as(provisioned, MAPPER, None))
    try:
        record = ExceptionRecord(
            dedupe_key="roles-1",
            stage="mapper",
            category="mapping",
            reason="no_rule",
            message="no rule matched field event_type",
            source="test",
        )
        async with conn.transaction():
            ids = await exception_store.record_all(conn, [record])
        assert ids[0] is not None
        seq = await audit.record(
            conn,
            actor="tester",
            action="discard",
            target_kind="exception",
            target_id=ids[0],
            outcome="ok",
        )
        assert seq >= 1
        for statement in (
            "UPDATE carebus_audit.entry SET actor = 'someone else'",
            "DELETE FROM carebus_audit.entry",
            "SELECT * FROM carebus_audit.entry",
            "DELETE FROM carebus_exceptions.exception_record",
            "ALTER TABLE carebus_audit.entry DISABLE TRIGGER entry_append_only",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_service_role_starts_when_nothing_is_pending_and_is_refused_otherwise(
    provisioned: str,
) -> None:
    conn = await asyncpg.connect(database_url_as(provisioned, MAPPER, None))
    try:
        applied = await migrate(conn, MAPPER, load_migrations("carebus_mapper"))
        assert applied == []
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await migrate(conn, "carebus_elsewhere", load_migrations("carebus_mapper"))
    finally:
        await conn.close()


async def test_provisioning_again_adopts_what_an_administrator_made_and_changes_nothing_else(
    database_url: str,
) -> None:
    async with own_database(database_url, "carebus_roles") as db:
        conn = await asyncpg.connect(db)
        try:
            # Before roles: a service migrated its schema as the administrator.
            await migrate(conn, MAPPER, load_migrations("carebus_mapper"))
            first = await provision_database(db, passwords={})
            assert any(MAPPER in line and "now owned by" in line for line in first)
            second = await provision_database(db, passwords={})
            assert all("applied" not in line and "now owned" not in line for line in second)
            owner = await conn.fetchval(
                "SELECT pg_get_userbyid(relowner) FROM pg_class "
                "WHERE oid = 'carebus_mapper.entity_version'::regclass"
            )
            assert owner == OWNER_ROLE
        finally:
            await conn.close()
