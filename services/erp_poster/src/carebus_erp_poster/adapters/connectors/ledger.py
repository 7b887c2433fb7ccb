"""Connector "ledger": the embedded double-entry general ledger in PostgreSQL.

One fetched batch is one statement for the entries (multi-row INSERT … ON CONFLICT on the
idempotency key) and one for all their lines, inside the poster's transaction, so the
posting, the inbox rows and the journal states commit together. The database itself refuses
an unbalanced entry at commit (see migrations/002_ledger.sql).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from carebus_erp_poster.domain.journals import JournalState, Posting, idempotency_key
from carebus_erp_poster.domain.results import (
    Booked,
    Confirmation,
    Confirmed,
    PostResult,
    StillPending,
)

# The entries travel as one JSON parameter: msgspec encodes the rows as JSON for a fraction of
# the CPU asyncpg spends on one typed array per column (docs/decisions/009).
_INSERT_ENTRIES = """
INSERT INTO carebus_erp_poster.journal_entry
    (idempotency_key, journal_id, company, site, posting_date, description,
     source_event_id, correlation_id)
SELECT * FROM json_to_recordset($1::json) AS e(
    idempotency_key text, journal_id text, company text, site text, posting_date date,
    description text, source_event_id text, correlation_id text)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING entry_id, idempotency_key, posted_at, posting_date
"""
# Lines travel the same way. COPY would win only at thousands of rows: a batch brings tens
# (docs/decisions/009).
_INSERT_LINES = """
INSERT INTO carebus_erp_poster.journal_line
    (entry_id, line_number, account, side, amount_minor, currency,
     cost_centre, department, location, payer_class, provider, memo)
SELECT * FROM json_to_recordset($1::json) AS l(
    entry_id bigint, line_number integer, account text, side text, amount_minor bigint,
    currency text, cost_centre text, department text, location text, payer_class text,
    provider text, memo text)
"""
_ENCODER = msgspec.json.Encoder()

_EXISTING = """
SELECT entry_id, idempotency_key, posted_at, posting_date
  FROM carebus_erp_poster.journal_entry WHERE idempotency_key = ANY($1::text[])
"""


def document_number(entry_id: int) -> str:
    return f"GL-{entry_id:010d}"


def _booked(row: Any) -> Booked:
    number = document_number(row["entry_id"])
    period = row["posting_date"].strftime("%Y-%m")
    return Booked(
        erp_request_id=number, document_number=number, fiscal_period=period, at=row["posted_at"]
    )


def entry_row(posting: Posting) -> dict[str, Any]:
    """The journal_entry columns of ``posting`` (the ledger sets entry_id and posted_at)."""
    req = posting.request
    return {
        "idempotency_key": posting.key,
        "journal_id": req.journal_id,
        "company": req.company,
        "site": req.site,
        "posting_date": req.posting_date,
        "description": req.description,
        "source_event_id": req.event_id,
        "correlation_id": req.correlation_id,
    }


def line_rows(entry_id: int, posting: Posting) -> list[dict[str, Any]]:
    """The journal_line rows of ``posting``, booked as entry ``entry_id``."""
    rows = []
    for line in posting.request.lines:
        d = line.dimensions
        rows.append(
            {
                "entry_id": entry_id,
                "line_number": line.line_number,
                "account": line.account,
                "side": str(line.side),
                "amount_minor": line.amount.amount_minor,
                "currency": line.amount.currency,
                "cost_centre": d.cost_centre,
                "department": d.department,
                "location": d.location,
                "payer_class": None if d.payer_class is None else str(d.payer_class),
                "provider": d.provider,
                "memo": line.memo,
            }
        )
    return rows


class LedgerConnector:
    name = "ledger"
    atomic_with_inbox = True

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def post(self, conn: Any, postings: Sequence[Posting]) -> list[PostResult]:
        if not postings:
            return []
        keys = [p.key for p in postings]
        # In key order: concurrent batches (replicas, parallel_batches) sharing a journal
        # then take its row locks in one order and cannot deadlock on them.
        ordered = sorted(postings, key=lambda p: p.key)
        entries = _ENCODER.encode([entry_row(p) for p in ordered]).decode()
        inserted = await conn.fetch(_INSERT_ENTRIES, entries)
        rows = {row["idempotency_key"]: row for row in inserted}
        lines = [
            line
            for posting in postings
            if posting.key in rows
            for line in line_rows(rows[posting.key]["entry_id"], posting)
        ]
        if lines:
            await conn.execute(_INSERT_LINES, _ENCODER.encode(lines).decode())
        missing = [key for key in keys if key not in rows]
        if missing:  # posted before under another request id: report the existing entry
            rows.update(
                {row["idempotency_key"]: row for row in await conn.fetch(_EXISTING, missing)}
            )
        return [_booked(rows[key]) for key in keys]

    async def confirm(self, journals: Sequence[JournalState]) -> list[Confirmation]:
        """The ledger books at commit, so a journal is confirmed as soon as its entry exists."""
        keys = [idempotency_key(j.journal_id, j.attempt) for j in journals]
        async with self._pool().acquire() as conn:
            rows = {row["idempotency_key"]: row for row in await conn.fetch(_EXISTING, keys)}
        out: list[Confirmation] = []
        for key in keys:
            if key in rows:
                booked = _booked(rows[key])
                out.append(Confirmed(booked.document_number, booked.fiscal_period, booked.at))
            else:
                out.append(StillPending())
        return out

    async def interrupt(self) -> None:
        return None
