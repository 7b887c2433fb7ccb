"""Draining the outbox: change events to MASTERDATA and current values to the KV bucket.

Rows are published in id order, confirmed, then deleted, all inside one transaction holding
an advisory lock, so replicas never publish the same rows at once (which could let an older
value of a key overwrite a newer one in the bucket). A crash after publishing and before the
delete republishes the same message ids: JetStream drops them as duplicates, and the KV put
writes the same value again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from nats.js import JetStreamContext

from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.config import SCHEMA
from carebus_shared.exceptions.store import decode_headers
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed

log = logging.getLogger("carebus.masterdata.outbox")

OUTBOX_LOCK = 0x6D64_0B01  # advisory lock key: one drainer at a time across replicas


class OutboxDrainer:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        js: Callable[[], JetStreamContext],
        bucket: str,
        metrics: ValidatorMetrics,
        *,
        poll_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._pool = pool
        self._js = js
        self._bucket = bucket
        self._metrics = metrics
        self._poll_s = poll_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A change was committed: drain now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self._poll_s
        while True:
            try:
                while await self.drain_once():
                    pass
                backoff = self._poll_s
            except (OSError, asyncpg.PostgresError, RuntimeError, TimeoutError) as exc:
                log.warning("outbox not drained, will retry: %s", exc)
                backoff = min(backoff * 2, 10.0)
            try:
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def drain_once(self) -> int:
        """Publish one batch of rows; the number published (0: empty, or another replica)."""
        async with self._pool().acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", OUTBOX_LOCK):
                return 0
            rows = await conn.fetch(
                f"SELECT id, subject, msg_id, headers, payload, kv_key FROM {SCHEMA}.outbox "
                "ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            await publish_confirmed(self._js(), self._outgoing(rows))
            await conn.execute(
                f"DELETE FROM {SCHEMA}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        self._metrics.outbox_published.inc(len(rows))
        return len(rows)

    def _outgoing(self, rows: list[Any]) -> list[Outgoing]:
        out = []
        for row in rows:
            headers = decode_headers(row["headers"])
            out.append(Outgoing(row["subject"], row["payload"], row["msg_id"], headers))
            # A KV put is a publish to $KV.<bucket>.<key>; pipelined with the events.
            out.append(
                Outgoing(
                    f"$KV.{self._bucket}.{row['kv_key']}", row["payload"], f"kv-{row['msg_id']}"
                )
            )
        return out
