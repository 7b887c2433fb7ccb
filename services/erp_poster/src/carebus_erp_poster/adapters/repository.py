"""The poster's own tables: the inbox (which requests this consumer handled) and
journal_status (where each journal stands in the ERP). Multi-row statements throughout:
one round trip per fetched batch, not one per journal.

Journal states travel as one JSON parameter (``json_to_recordset``) rather than as one typed
array per column: msgspec encodes the JSON for a fraction of the CPU asyncpg spends on the
arrays (docs/decisions/009).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from carebus_erp_poster.domain.journals import JournalState, Status

_COLUMNS = (
    "journal_id",
    "connector",
    "attempt",
    "status",
    "event_id",
    "site",
    "correlation_id",
    "entity_version",
    "stream_seq",
    "subject",
    "erp_request_id",
    "posted_at",
    "confirmed_at",
    "rejected_at",
    "document_number",
    "fiscal_period",
    "error_code",
    "error_message",
)
_TYPES = (
    "text", "text", "int", "text", "text", "text", "text", "bigint", "bigint", "text", "text",
    "timestamptz", "timestamptz", "timestamptz", "text", "text", "text", "text",
)  # fmt: skip
_SELECT_STATE = ", ".join(f"s.{c}" for c in _COLUMNS)
_STATE_RECORD = ", ".join(f"{c} {t}" for c, t in zip(_COLUMNS, _TYPES, strict=True))
_ENCODER = msgspec.json.Encoder()


# $1: the states as a JSON array of JournalState objects (whose fields are the columns);
# $2: how long until a pending journal is checked for its confirmation.
_UPSERT_STATES = f"""
INSERT INTO carebus_erp_poster.journal_status ({", ".join(_COLUMNS)}, next_check_at)
SELECT u.*, CASE WHEN u.status = 'pending' THEN now() + make_interval(secs => $2) END
  FROM json_to_recordset($1::json) AS u({_STATE_RECORD})
ON CONFLICT (journal_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])},
    next_check_at = EXCLUDED.next_check_at,
    updated_at = now()
-- A confirmed journal is final: a late or concurrent writer never turns it back.
WHERE carebus_erp_poster.journal_status.status <> 'confirmed'
"""

# The inbox rows and the journal states of one posting, in one round trip (the tables are
# independent: no foreign key between them, so statement order inside does not matter).
# $3: the consumer; $4, $5: the inbox rows' event ids and journal ids.
_RECORD = f"""
WITH inbox AS (
    INSERT INTO carebus_erp_poster.inbox (consumer, event_id, journal_id)
    SELECT $3, e, j FROM unnest($4::text[], $5::text[]) AS u(e, j)
    ON CONFLICT (consumer, event_id) DO NOTHING
)
{_UPSERT_STATES}
"""

# Both lookups a batch starts with, in one round trip (migrations/004_lookup_function.sql:
# a function, so that it is planned for the keys at hand, never with a stale generic plan;
# docs/decisions/010).
_LOOKUP = "SELECT * FROM carebus_erp_poster.lookup_states($1, $2::text[], $3::text[])"

_CLAIM_PENDING = f"""
UPDATE carebus_erp_poster.journal_status s
   SET next_check_at = now() + make_interval(secs => $2), checks = checks + 1
 WHERE journal_id IN (
        SELECT journal_id FROM carebus_erp_poster.journal_status
         WHERE status = 'pending' AND next_check_at <= now()
         ORDER BY next_check_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED)
RETURNING {_SELECT_STATE}
"""


def _state(row: Any) -> JournalState:
    values = {c: row[c] for c in _COLUMNS}
    values["status"] = Status(values["status"])
    return JournalState(**values)


async def lookup(
    conn: Any, consumer: str, event_ids: Sequence[str], journal_ids: Sequence[str]
) -> tuple[dict[str, JournalState], dict[str, JournalState]]:
    """(the requests among ``event_ids`` this consumer already handled → their journal's
    state, the journals among ``journal_ids`` that have a state → that state)."""
    if not event_ids and not journal_ids:
        return {}, {}
    rows = await conn.fetch(_LOOKUP, consumer, list(event_ids), list(journal_ids))
    handled: dict[str, JournalState] = {}
    current: dict[str, JournalState] = {}
    for row in rows:
        state = _state(row)
        if row["requested"]:
            current[row["journal_id"]] = state
        for event_id in row["handled_event_ids"] or ():
            handled[event_id] = state
    return handled, current


async def count_redelivery(conn: Any, consumer: str, event_ids: Sequence[str]) -> None:
    await conn.execute(
        "UPDATE carebus_erp_poster.inbox SET redeliveries = redeliveries + 1 "
        "WHERE consumer = $1 AND event_id = ANY($2::text[])",
        consumer,
        list(event_ids),
    )


async def states(conn: Any, journal_ids: Sequence[str]) -> dict[str, JournalState]:
    if not journal_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {_SELECT_STATE} FROM carebus_erp_poster.journal_status s "
        "WHERE s.journal_id = ANY($1::text[])",
        list(journal_ids),
    )
    return {row["journal_id"]: _state(row) for row in rows}


async def record(
    conn: Any,
    consumer: str,
    inbox: Iterable[tuple[str, str]],
    journals: Sequence[JournalState],
    recheck_after_s: float,
) -> None:
    """Write inbox rows (event id, journal id) and journal states; call inside the posting
    transaction so that both exist exactly when the posting does."""
    pairs = list(inbox)
    if not pairs and not journals:
        return
    await conn.execute(
        _RECORD,
        _as_json(journals),
        recheck_after_s,
        consumer,
        [e for e, _ in pairs],
        [j for _, j in pairs],
    )


async def save_states(conn: Any, journals: Sequence[JournalState], recheck_after_s: float) -> None:
    if not journals:
        return
    await conn.execute(_UPSERT_STATES, _as_json(journals), recheck_after_s)


def _as_json(journals: Sequence[JournalState]) -> str:
    # By journal id: concurrent batches upserting the same journals lock them in one order.
    return _ENCODER.encode(sorted(journals, key=lambda j: j.journal_id)).decode()


async def forget(conn: Any, consumer: str, journal_ids: Sequence[str]) -> None:
    """Drop the inbox rows of rejected journals, so that a re-drive after the fix posts them."""
    if journal_ids:
        await conn.execute(
            "DELETE FROM carebus_erp_poster.inbox WHERE consumer = $1 "
            "AND journal_id = ANY($2::text[])",
            consumer,
            list(journal_ids),
        )


async def claim_pending(conn: Any, limit: int, lease_s: float) -> list[JournalState]:
    """Pending journals due for a check; leased so that replicas do not check the same ones."""
    rows = await conn.fetch(_CLAIM_PENDING, limit, lease_s)
    return [_state(row) for row in rows]


async def pending_summary(conn: Any) -> tuple[int, float]:
    """(pending journals, age in seconds of the oldest one)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, "
        "coalesce(extract(epoch FROM now() - min(posted_at)), 0)::float8 AS oldest "
        "FROM carebus_erp_poster.journal_status WHERE status = 'pending'"
    )
    return int(row["n"]), float(row["oldest"])
