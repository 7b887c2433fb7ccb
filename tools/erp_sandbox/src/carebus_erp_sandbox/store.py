"""The sandbox's PostgreSQL: accounts, accepted journals, and their delayed decision."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_COLUMNS = (
    "request_id, status, accepted_at, document_number, fiscal_period, decided_at, error_code, "
    "error_message, body_hash"
)


@dataclass(frozen=True)
class Stored:
    request_id: str
    status: str
    accepted_at: dt.datetime
    document_number: str | None
    fiscal_period: str | None
    decided_at: dt.datetime | None
    error_code: str | None
    error_message: str | None
    body_hash: str


def _stored(row: Any) -> Stored:
    return Stored(**{k: row[k] for k in Stored.__dataclass_fields__})


async def add_accounts(conn: Any, codes: Sequence[str]) -> None:
    await conn.execute(
        "INSERT INTO carebus_erp_sandbox.account (code) SELECT unnest($1::text[]) "
        "ON CONFLICT (code) DO UPDATE SET active = true",
        list(codes),
    )


async def unknown_accounts(conn: Any, codes: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT code FROM carebus_erp_sandbox.account WHERE active AND code = ANY($1::text[])",
        list(codes),
    )
    return set(codes) - {row["code"] for row in rows}


async def by_key(conn: Any, key: str) -> Stored | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM carebus_erp_sandbox.journal WHERE idempotency_key = $1", key
    )
    return None if row is None else _stored(row)


async def count_replay(conn: Any, key: str) -> None:
    await conn.execute(
        "UPDATE carebus_erp_sandbox.journal SET replays = replays + 1 WHERE idempotency_key = $1",
        key,
    )


async def accept(
    conn: Any,
    *,
    key: str,
    body_hash: str,
    journal_id: str,
    company: str,
    posting_date: dt.date,
    body: bytes,
    confirm_delay_s: float,
) -> Stored | None:
    """Store a new journal as pending; None when the key exists (a concurrent duplicate)."""
    row = await conn.fetchrow(
        "INSERT INTO carebus_erp_sandbox.journal (request_id, idempotency_key, body_hash, "
        "journal_id, company, posting_date, body, status, decide_after) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 'pending', "
        "now() + make_interval(secs => $8)) "
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
        f"REQ-{uuid.uuid4().hex[:16]}",
        key,
        body_hash,
        journal_id,
        company,
        posting_date,
        body.decode(),
        confirm_delay_s,
    )
    return None if row is None else _stored(row)


async def decide_due(conn: Any, closed_periods: Sequence[str], request_ids: Sequence[str]) -> None:
    """Book (or reject, for a closed period) the given journals whose delay has passed."""
    await conn.execute(
        """
        UPDATE carebus_erp_sandbox.journal j SET
            decided_at = now(),
            fiscal_period = to_char(posting_date, 'YYYY-MM'),
            status = CASE WHEN to_char(posting_date, 'YYYY-MM') = ANY($1::text[])
                          THEN 'rejected' ELSE 'confirmed' END,
            document_number = CASE WHEN to_char(posting_date, 'YYYY-MM') = ANY($1::text[])
                          THEN NULL
                          ELSE 'JV-' || lpad(nextval('carebus_erp_sandbox.document_seq')::text,
                                             8, '0') END,
            error_code = CASE WHEN to_char(posting_date, 'YYYY-MM') = ANY($1::text[])
                          THEN 'PERIOD-CLOSED' END,
            error_message = CASE WHEN to_char(posting_date, 'YYYY-MM') = ANY($1::text[])
                          THEN 'posting period ' || to_char(posting_date, 'YYYY-MM')
                               || ' is closed' END
        WHERE status = 'pending' AND decide_after <= now()
          AND request_id = ANY($2::text[])
        """,
        list(closed_periods),
        list(request_ids),
    )


async def statuses(conn: Any, request_ids: Sequence[str]) -> dict[str, Stored]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM carebus_erp_sandbox.journal WHERE request_id = ANY($1::text[])",
        list(request_ids),
    )
    return {row["request_id"]: _stored(row) for row in rows}


async def totals(conn: Any) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT count(*) AS journals, count(DISTINCT journal_id) AS distinct_journals, "
        "coalesce(sum(replays), 0) AS replays, "
        "count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'confirmed') AS confirmed, "
        "count(*) FILTER (WHERE status = 'rejected') AS rejected "
        "FROM carebus_erp_sandbox.journal"
    )
    return {k: int(row[k]) for k in row.keys()}  # noqa: SIM118  # asyncpg Record
