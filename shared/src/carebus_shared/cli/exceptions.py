"""`carebus exceptions`: list, show, discard and re-drive records in the exception store."""

from __future__ import annotations

import getpass

import asyncpg
import nats

from carebus_shared.exceptions import store


async def list_records(database_url: str, stage: str | None, limit: int) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await store.list_open(conn, limit, stage)
    finally:
        await conn.close()
    return [
        f"{r['id']:>6} {r['recorded_at']:%Y-%m-%d %H:%M:%S} {r['stage']:22} "
        f"{r['category']:13} {r['reason']:28} {r['message']}"
        for r in rows
    ]


async def show_record(database_url: str, record_id: int) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        row = await store.get(conn, record_id)
    finally:
        await conn.close()
    if row is None:
        return f"no exception record {record_id}"
    raw = row.pop("raw") or b""
    lines = [f"{key}: {value}" for key, value in row.items()]
    lines.append(f"raw ({len(raw)} bytes):")
    lines.append(raw.decode("utf-8", "replace"))
    return "\n".join(lines)


async def discard(database_url: str, record_id: int, note: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return await store.resolve(conn, record_id, "discarded", getpass.getuser(), note)
    finally:
        await conn.close()


async def redrive(nats_url: str, database_url: str, record_id: int) -> str:
    """Republish a stored message to its original subject, then mark the record re-driven.

    The re-driven copy gets a new message id (the original id is inside JetStream's duplicate
    window or long gone; either way a fresh id is what makes JetStream accept it again).
    Inputs that never reached JetStream (a rejected HL7 message) are re-driven by re-sending
    them to their adapter once fixed.
    """
    conn = await asyncpg.connect(database_url)
    try:
        row = await store.get(conn, record_id)
        if row is None or row["status"] != "open":
            return f"record {record_id} is not open"
        if not row["subject"] or row["raw"] is None:
            return f"record {record_id} holds no stored message; re-send it to its adapter"
        headers = dict(store.decode_headers(row["headers"]))
        headers["Nats-Msg-Id"] = f"redrive-{record_id}-{headers.get('Nats-Msg-Id', '')}"
        nc = await nats.connect(nats_url)
        try:
            ack = await nc.jetstream().publish(row["subject"], row["raw"], headers=headers)
        finally:
            await nc.close()
        await store.resolve(conn, record_id, "redriven", getpass.getuser(), f"seq {ack.seq}")
        return f"record {record_id} re-driven to {row['subject']} as {ack.stream}:{ack.seq}"
    finally:
        await conn.close()
