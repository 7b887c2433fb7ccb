"""The audit trail and the transactional outbox, written in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.envelope import Contract, Event
from carebus_masterdata_validator.config import SCHEMA
from carebus_shared.tracing import context as trace
from carebus_shared.tracing.context import with_trace


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


async def audit(
    conn: Any,
    *,
    actor: str,
    action: str,
    kind: str,
    record_id: str,
    version: int | None,
    request_id: str,
    before: Contract | dict[str, Any] | None,
    after: Contract | dict[str, Any] | None,
) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.audit (actor, action, kind, record_id, version, request_id, "
        "before, after) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)",
        actor,
        action,
        kind,
        record_id,
        version,
        request_id,
        _json(before),
        _json(after),
    )


async def enqueue(conn: Any, event: Event, kv_key: str) -> None:
    """Queue ``event`` for MASTERDATA and its bytes as the KV value under ``kv_key``."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.outbox (subject, msg_id, headers, payload, kv_key) "
        "VALUES ($1, $2, $3::jsonb, $4, $5)",
        subject_for(event),
        event.event_id,
        # The change request's trace rides along to whenever the outbox publishes it.
        _json(with_trace(headers_for(event), trace.current())),
        encode(event),
        kv_key,
    )


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    version: int | None
    request_id: str
    before: Any
    after: Any


async def history(conn: Any, kind: str, record_id: str, limit: int = 100) -> list[AuditEntry]:
    rows = await conn.fetch(
        f"SELECT id, at, actor, action, version, request_id, before, after FROM {SCHEMA}.audit "
        "WHERE kind = $1 AND record_id = $2 ORDER BY id DESC LIMIT $3",
        kind,
        record_id,
        limit,
    )
    return [
        AuditEntry(
            row["id"],
            row["at"],
            row["actor"],
            row["action"],
            row["version"],
            row["request_id"],
            msgspec.json.decode(row["before"]) if row["before"] else None,
            msgspec.json.decode(row["after"]) if row["after"] else None,
        )
        for row in rows
    ]
