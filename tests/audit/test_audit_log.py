"""The audit log on a real PostgreSQL (a database of each test's own): the chain verifies,
an edit or a deletion made behind the triggers' back is found at the entry it touched,
concurrent writers (tasks and processes) leave one unbroken chain, UPDATE, DELETE and
TRUNCATE are refused, and `carebus audit verify|list` say so."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from carebus_shared import audit
from carebus_shared.cli.main import main as carebus
from carebus_shared.db.migrations import load_migrations, migrate
from tests.support.stacks import own_database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    async with own_database(database_url, "carebus_audit") as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, audit.OWNER, load_migrations(audit.PACKAGE))
        finally:
            await conn.close()
        yield url


@pytest.fixture
async def pool(db: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(db, min_size=1, max_size=8)
    yield created
    await created.close()


async def _write(pool: asyncpg.Pool, n: int, actor: str = "alice") -> list[int]:
    return [
        await audit.record(
            pool,
            actor=actor,
            action="phi_view",
            target_kind="exception_record",
            target_id=i,
            outcome="shown",
            detail={"include": "payload"},
        )
        for i in range(n)
    ]


async def _tamper(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """Change the log as a superuser would: the triggers switched off for this session."""
    await conn.execute("SET session_replication_role = replica")
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.execute("SET session_replication_role = origin")


async def test_the_chain_verifies_and_lists_by_actor_action_and_time(pool: asyncpg.Pool) -> None:
    seqs = await _write(pool, 10) + await _write(pool, 5, actor="bob")
    assert seqs == list(range(1, 16))
    await audit.record(
        pool, actor="bob", action="discard", target_kind="exception_record", target_id=3,
        outcome="discarded", detail={"reason_chars": 12},
    )  # fmt: skip
    async with pool.acquire() as conn:
        assert await audit.verify(conn) is None
        by_bob = await audit.entries(conn, actor="bob")
        discards = await audit.entries(conn, action="discard")
        future = await audit.entries(conn, since=datetime.now(UTC) + timedelta(minutes=1))
        first = (await audit.entries(conn, limit=1000))[-1]
    assert [e.seq for e in by_bob] == list(range(16, 10, -1))
    assert [(e.target_id, e.outcome) for e in discards] == [("3", "discarded")]
    assert future == []
    assert first.prev_hash == audit.GENESIS
    assert first.hash == first.expected_hash()
    assert audit.detail_of(first) == {"include": "payload"}


async def test_an_entry_rolled_back_with_its_transaction_leaves_no_trace(
    pool: asyncpg.Pool,
) -> None:
    await _write(pool, 3)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await audit.record(
            conn, actor="a", action="release", target_kind="parked_event", target_id=1,
            outcome="released",
        )  # fmt: skip
        await tx.rollback()  # the change it went with failed
        assert await audit.record(
            conn, actor="a", action="release", target_kind="parked_event", target_id=1,
            outcome="released",
        ) == 4  # fmt: skip
        assert await audit.verify(conn) is None


async def test_update_delete_and_truncate_are_refused(pool: asyncpg.Pool) -> None:
    await _write(pool, 3)
    async with pool.acquire() as conn:
        for sql in (
            "UPDATE carebus_audit.entry SET outcome = 'nothing' WHERE seq = 2",
            "DELETE FROM carebus_audit.entry WHERE seq = 3",
            "TRUNCATE carebus_audit.entry",
            "DELETE FROM carebus_audit.head",
            "UPDATE carebus_audit.head SET seq = 1",
        ):
            with pytest.raises(asyncpg.RaiseError):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM carebus_audit.entry") == 3
        assert await audit.verify(conn) is None


@pytest.mark.parametrize(
    ("sql", "broken_at", "problem"),
    [
        ("UPDATE carebus_audit.entry SET actor = 'mallory' WHERE seq = 6", 6, "content"),
        ("UPDATE carebus_audit.entry SET detail = '{}' WHERE seq = 4", 4, "content"),
        ("UPDATE carebus_audit.entry SET at = at - interval '1 day' WHERE seq = 9", 9, "content"),
        ("DELETE FROM carebus_audit.entry WHERE seq = 5", 5, "missing"),
        ("DELETE FROM carebus_audit.entry WHERE seq >= 9", 9, "ends at entry 8"),
        # Re-hashing an edited entry does not help: the next one still names the old hash.
        (
            "UPDATE carebus_audit.entry SET outcome = 'x', hash = repeat('a', 64) WHERE seq = 3",
            3,
            "content",
        ),
    ],
)
async def test_tampering_is_found_at_the_entry_it_touched(
    pool: asyncpg.Pool, sql: str, broken_at: int, problem: str
) -> None:
    await _write(pool, 10)
    async with pool.acquire() as conn:
        await _tamper(conn, sql)
        broken = await audit.verify(conn)
    assert broken is not None
    assert broken.seq == broken_at
    assert problem in broken.problem


async def test_a_rewritten_entry_with_a_valid_own_hash_breaks_the_next_link(
    pool: asyncpg.Pool,
) -> None:
    await _write(pool, 6)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM carebus_audit.entry WHERE seq = 4")
        forged = audit.Entry(**{**dict(row), "actor": "mallory", "hash": ""})
        await _tamper(
            conn,
            "UPDATE carebus_audit.entry SET actor = 'mallory', hash = $1 WHERE seq = 4",
            forged.expected_hash(),
        )
        broken = await audit.verify(conn)
    assert broken == audit.Broken(5, "its previous hash is not the previous entry's hash")


async def test_concurrent_tasks_append_one_unbroken_chain(pool: asyncpg.Pool) -> None:
    await asyncio.gather(*(_write(pool, 50, actor=f"task-{n}") for n in range(4)))
    async with pool.acquire() as conn:
        assert await audit.verify(conn) is None
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM carebus_audit.entry")]
        assert sorted(seqs) == list(range(1, 201))
        per_actor = dict(
            await conn.fetch("SELECT actor, count(*) FROM carebus_audit.entry GROUP BY actor")
        )
    assert per_actor == {f"task-{n}": 50 for n in range(4)}


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import asyncpg
    from carebus_shared import audit

    async def main(url, name):
        pool = await asyncpg.create_pool(url, min_size=2, max_size=2)
        async def one(task):
            for i in range(50):
                await audit.record(pool, actor=f"{name}-{task}", action="redrive",
                                   target_kind="exception_record", target_id=i, outcome="ok")
        await asyncio.gather(one(0), one(1))
        await pool.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_processes_and_this_one_append_one_unbroken_chain(
    pool: asyncpg.Pool, db: str
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _WRITER, db, f"proc{n}")
        for n in range(2)
    ]
    await _write(pool, 50, actor="here")
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=60)
    assert codes == [0, 0]
    async with pool.acquire() as conn:
        assert await audit.verify(conn) is None
        total = await conn.fetchval("SELECT count(*) FROM carebus_audit.entry")
        actors = await conn.fetchval("SELECT count(DISTINCT actor) FROM carebus_audit.entry")
    assert (total, actors) == (250, 5)


async def test_the_cli_verifies_and_lists(
    pool: asyncpg.Pool, db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _write(pool, 3)
    await audit.record(
        pool, actor="bob", action="discard", target_kind="exception_record", target_id=7,
        outcome="discarded",
    )  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", db)
    assert await asyncio.to_thread(carebus, ["audit", "verify"]) == 0
    assert "4 entries, chain verified" in capsys.readouterr().out
    assert await asyncio.to_thread(carebus, ["audit", "list", "--action", "discard"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    assert "bob" in listed[0]
    assert "exception_record:7" in listed[0]
    assert await asyncio.to_thread(carebus, ["audit", "list", "--actor", "nobody"]) == 0
    assert "no matching audit entries" in capsys.readouterr().out
    # By time: a window before the entries holds none, one around them all, bob's among them.
    now = datetime.now(UTC)
    before = ["--until", (now - timedelta(hours=1)).isoformat()]
    assert await asyncio.to_thread(carebus, ["audit", "list", *before]) == 0
    assert "no matching audit entries" in capsys.readouterr().out
    around = ["--since", (now - timedelta(hours=1)).isoformat(), "--until", now.isoformat()]
    assert await asyncio.to_thread(carebus, ["audit", "list", *around, "--actor", "bob"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    async with pool.acquire() as conn:
        await _tamper(conn, "UPDATE carebus_audit.entry SET target_id = '8' WHERE seq = 2")
    assert await asyncio.to_thread(carebus, ["audit", "verify"]) == 1
    assert "BROKEN at entry 2" in capsys.readouterr().out
