"""`carebus exceptions`: list, show, discard and re-drive records in the exception store.

The same use cases as the exceptions API (``carebus_shared.exceptions.actions``): a stream
message is republished by this command; an input an adapter kept is re-driven through that
adapter (``CAREBUS_ADAPTER_URLS``, else the adapters' default local ports).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from nats.aio.client import Client
from nats.js import JetStreamContext

from carebus_shared import audit
from carebus_shared.auth.client import cli_key
from carebus_shared.cli.replay import actor_or_os_user
from carebus_shared.exceptions import query, store
from carebus_shared.exceptions.actions import ExceptionActions
from carebus_shared.exceptions.adapter_client import (
    DEFAULT_ADAPTER_URLS,
    AdapterRedriveClient,
    parse_adapter_urls,
)
from carebus_shared.exceptions.redrive import RedriveResult
from carebus_shared.jetstream.connection import connect as connect_nats


async def list_records(database_url: str, flt: query.ExceptionFilter, limit: int) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        page = await query.search(conn, flt, None, limit)
    finally:
        await conn.close()
    lines = [
        f"{r['id']:>6} {r['recorded_at']:%Y-%m-%d %H:%M:%S} {r['status']:9} "
        f"{r['site'] or '-':8} {r['stage']:22} {r['category']:13} {r['reason']:28} "
        f"{r['message']}"
        for r in page.items
    ]
    if lines:
        lines.append(f"({len(lines)} shown of {page.total} matching, newest first)")
    return lines


async def show_record(database_url: str, record_id: int) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        row = await store.get(conn, record_id)
        actions = await store.history(conn, record_id) if row else []
        # It prints the kept input: a view of patient data.
        await audit.record(
            conn, actor=actor_or_os_user(), action="phi_view", target_kind="exception_record",
            target_id=record_id, outcome="shown" if row else "not_found",
            detail={"include": "payload", "via": "cli"},
        )  # fmt: skip
    finally:
        await conn.close()
    if row is None:
        return f"no exception record {record_id}"
    raw = row.pop("raw") or b""
    lines = [f"{key}: {value}" for key, value in row.items()]
    lines.append(f"history ({len(actions)} actions):")
    lines += [_action_line(action) for action in actions]
    lines.append(f"raw ({len(raw)} bytes):")
    lines.append(raw.decode("utf-8", "replace"))
    return "\n".join(lines)


def _action_line(action: dict[str, Any]) -> str:
    sent = "" if action["sent_bytes"] is None else f" (sent {action['sent_bytes']} bytes)"
    return (
        f"  {action['at']:%Y-%m-%d %H:%M:%S} {action['actor']} {action['action']} -> "
        f"{action['outcome']}{sent}: {action['note']}"
    )


def adapter_urls() -> dict[str, str]:
    configured = os.environ.get("CAREBUS_ADAPTER_URLS", "")
    return parse_adapter_urls(configured) if configured else dict(DEFAULT_ADAPTER_URLS)


@asynccontextmanager
async def _actions(nats_url: str | None, database_url: str) -> AsyncIterator[ExceptionActions]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    nc: Client | None = await connect_nats(nats_url) if nats_url else None
    # The adapter records the key's client as the actor (the CLI's key: CAREBUS_API_KEY).
    adapters = AdapterRedriveClient(adapter_urls(), service_key=cli_key())

    def js() -> JetStreamContext:
        if nc is None:
            raise RuntimeError("this command does not publish")
        return nc.jetstream()

    try:
        yield ExceptionActions(lambda: pool, js, adapters)
    finally:
        await adapters.aclose()
        if nc is not None:
            await nc.close()
        await pool.close()


async def discard(database_url: str, record_id: int, reason: str) -> RedriveResult:
    async with _actions(None, database_url) as actions:
        return await actions.discard(record_id, reason, actor_or_os_user())


async def redrive(nats_url: str, database_url: str, record_id: int) -> RedriveResult:
    """Re-drive one record as stored, whichever stage kept it."""
    async with _actions(nats_url, database_url) as actions:
        return await actions.redrive(record_id, None, actor_or_os_user())
