"""What an end-to-end test reads back from a running stack: master data loaded through the
validator's API, a stream's events, the exception store's reasons."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import msgspec
import nats

from tests.support import auth

MasterData = list[tuple[str, list[dict[str, Any]]]]


async def import_master_data(validator_http: str, master_data: MasterData) -> None:
    """Each (collection, records) through ``POST /v1/<collection>/import``."""
    async with httpx.AsyncClient(
        base_url=validator_http, timeout=30, headers=auth.HEADERS
    ) as validator:
        for collection, records in master_data:
            reply = await validator.post(f"/v1/{collection}/import", json=records)
            assert reply.status_code == 200, reply.text


async def stream_events(nats_url: str, stream: str) -> list[dict[str, Any]]:
    """Every message on ``stream``, decoded as JSON, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(stream)).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            found.append(msgspec.json.decode((await js.get_msg(stream, seq)).data or b"{}"))
        return found
    finally:
        await nc.close()


async def exception_reasons(database_url: str) -> list[str]:
    """The reason of every record in the exception store."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT reason FROM carebus_exceptions.exception_record")
    finally:
        await conn.close()
    return [r["reason"] for r in rows]
