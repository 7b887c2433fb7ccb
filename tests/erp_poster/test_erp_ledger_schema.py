"""The ledger's database refuses what must never be booked, whatever code writes it."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

ENTRY = """
INSERT INTO carebus_erp_poster.journal_entry
    (idempotency_key, journal_id, company, site, posting_date, description, source_event_id,
     correlation_id)
VALUES ($1, $1, 'CAREBUS-HEALTH', $2, $3, 'raw SQL', 'evt-raw', 'corr-raw')
RETURNING entry_id
"""
LINE = """
INSERT INTO carebus_erp_poster.journal_line
    (entry_id, line_number, account, side, amount_minor, currency, cost_centre)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
DAY = dt.date(2025, 3, 14)


async def _entry(
    conn: asyncpg.Connection,
    key: str,
    lines: list[tuple[str, str, int, str]],
    site: str = "SITE01",
    cost_centre: str | None = "CC-100",
) -> int:
    entry_id: int = await conn.fetchval(ENTRY, key, site, DAY)
    for n, (account, side, amount, currency) in enumerate(lines, start=1):
        await conn.execute(LINE, entry_id, n, account, side, amount, currency, cost_centre)
    return entry_id


async def _count(conn: asyncpg.Connection, key: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM carebus_erp_poster.journal_entry WHERE idempotency_key = $1", key
        )
    )


async def test_an_unbalanced_entry_written_with_raw_sql_is_refused_at_commit(
    conn: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="unbalanced") as caught:
        async with conn.transaction():
            await _entry(conn, "raw-unbalanced", [("1200", "debit", 10_000, "USD"),
                                                  ("4000", "credit", 9_999, "USD")])  # fmt: skip
    assert caught.value.constraint_name == "journal_entry_balanced"
    assert await _count(conn, "raw-unbalanced") == 0


async def test_balance_is_per_currency_not_overall(conn: asyncpg.Connection) -> None:
    lines = [
        ("1200", "debit", 5_000, "USD"),
        ("4000", "credit", 5_000, "EUR"),
        ("1200", "debit", 5_000, "EUR"),
        ("4000", "credit", 5_000, "USD"),
    ]
    async with conn.transaction():
        await _entry(conn, "raw-two-currencies", lines)
    assert await _count(conn, "raw-two-currencies") == 1

    crossed = [("1200", "debit", 5_000, "USD"), ("4000", "credit", 5_000, "EUR")]
    with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
        async with conn.transaction():
            await _entry(conn, "raw-crossed-currencies", crossed)
    assert await _count(conn, "raw-crossed-currencies") == 0


async def test_an_entry_without_lines_or_with_one_line_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="at least two"):
        async with conn.transaction():
            await _entry(conn, "raw-empty", [])
    with pytest.raises(asyncpg.CheckViolationError, match="at least two"):
        async with conn.transaction():
            await _entry(conn, "raw-one-line", [("1200", "debit", 1, "USD")])


async def test_a_line_added_later_to_a_balanced_entry_is_refused(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        entry_id = await _entry(
            conn, "raw-then-added", [("1200", "debit", 700, "USD"), ("4000", "credit", 700, "USD")]
        )
    with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
        async with conn.transaction():
            await conn.execute(LINE, entry_id, 3, "4000", "credit", 1, "USD", None)
    lines = await conn.fetchval(
        "SELECT count(*) FROM carebus_erp_poster.journal_line WHERE entry_id = $1", entry_id
    )
    assert lines == 2


async def test_checking_early_does_not_bypass_the_constraint(conn: asyncpg.Connection) -> None:
    async def write_with_immediate_checks() -> None:
        async with conn.transaction():
            await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            await _entry(conn, "raw-immediate", [("1200", "debit", 10, "USD"),
                                                 ("4000", "credit", 10, "USD")])  # fmt: skip

    with pytest.raises(asyncpg.CheckViolationError):
        await write_with_immediate_checks()


async def test_the_ledger_is_append_only(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        entry_id = await _entry(
            conn, "raw-frozen", [("1200", "debit", 300, "USD"), ("4000", "credit", 300, "USD")]
        )
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await conn.execute(
            "UPDATE carebus_erp_poster.journal_line SET amount_minor = 1 WHERE entry_id = $1",
            entry_id,
        )
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await conn.execute(
            "DELETE FROM carebus_erp_poster.journal_entry WHERE entry_id = $1", entry_id
        )


async def test_the_idempotency_key_is_unique(conn: asyncpg.Connection) -> None:
    lines = [("1200", "debit", 100, "USD"), ("4000", "credit", 100, "USD")]
    async with conn.transaction():
        await _entry(conn, "raw-once", lines)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with conn.transaction():
            await _entry(conn, "raw-once", lines)
    assert await _count(conn, "raw-once") == 1


async def test_money_columns_refuse_non_positive_amounts_and_bad_currencies(
    conn: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        async with conn.transaction():
            await _entry(conn, "raw-negative", [("1200", "debit", -5, "USD"),
                                                ("4000", "credit", -5, "USD")])  # fmt: skip
    with pytest.raises(asyncpg.CheckViolationError):
        async with conn.transaction():
            await _entry(conn, "raw-currency", [("1200", "debit", 5, "usd"),
                                                ("4000", "credit", 5, "usd")])  # fmt: skip


async def test_trial_balance_views_add_up(conn: asyncpg.Connection) -> None:
    site, day_key = "VIEWSITE", "raw-view"
    async with conn.transaction():
        first = [("1200", "debit", 1_000, "USD"), ("4000", "credit", 1_000, "USD")]
        second = [("1200", "debit", 250, "USD"), ("4100", "credit", 250, "USD")]
        await _entry(conn, f"{day_key}-1", first, site, "CC-V1")
        await _entry(conn, f"{day_key}-2", second, site, "CC-V2")
    by_account = {
        r["account"]: r
        for r in await conn.fetch(
            "SELECT a.* FROM carebus_erp_poster.trial_balance_by_account a "
            "WHERE a.account IN ('1200', '4000', '4100') AND a.company = 'CAREBUS-HEALTH'"
        )
    }
    # The whole ledger balances, whatever other tests in this module booked.
    total = await conn.fetchval(
        "SELECT sum(balance_minor) FROM carebus_erp_poster.trial_balance_by_account"
    )
    assert total == 0
    assert by_account["1200"]["debit_minor"] >= 1_250
    site_rows = await conn.fetch(
        "SELECT account, debit_minor, credit_minor, net_minor, entries "
        "FROM carebus_erp_poster.activity_by_site_day WHERE site = $1 AND posting_date = $2 "
        "ORDER BY account",
        site,
        DAY,
    )
    assert [(r["account"], r["debit_minor"], r["credit_minor"], r["net_minor"], r["entries"])
            for r in site_rows] == [("1200", 1_250, 0, 1_250, 2), ("4000", 0, 1_000, -1_000, 1),
                                    ("4100", 0, 250, -250, 1)]  # fmt: skip
    cc = await conn.fetch(
        "SELECT cost_centre, account, balance_minor FROM carebus_erp_poster."
        "trial_balance_by_cost_centre WHERE cost_centre IN ('CC-V1', 'CC-V2') "
        "ORDER BY cost_centre, account"
    )
    assert [tuple(r) for r in cc] == [
        ("CC-V1", "1200", 1_000),
        ("CC-V1", "4000", -1_000),
        ("CC-V2", "1200", 250),
        ("CC-V2", "4100", -250),
    ]
