"""Rebuilding the tracker from the streams (the streams are the truth): its consumers stop,
its durables are deleted and made again (so they read every stream from the start), its
tables are emptied, and its consumers start again. The catch-up then runs as reading does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_ops.adapters import tracker_store
from carebus_shared import audit
from carebus_shared.jetstream.consumer import StageConsumer
from carebus_shared.jetstream.provision import consumer_config

log = logging.getLogger("carebus.ops.rebuild")


class RebuildBody(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    to_read: dict[str, int]
    """Per stream, the messages the tracker now reads again."""


class Rebuild:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        js: Callable[[], JetStreamContext],
        consumers: Sequence[StageConsumer],
        stop_timeout_s: float,
    ) -> None:
        self._pool = pool
        self._js = js
        self._consumers = list(consumers)
        self._stop_timeout_s = stop_timeout_s
        self._lock = asyncio.Lock()

    async def run(self, actor: str) -> RebuildBody:
        async with self._lock:  # one rebuild at a time
            log.info("tracker rebuild", extra={"actor": actor})
            await asyncio.gather(*(c.stop(self._stop_timeout_s) for c in self._consumers))
            try:
                js = self._js()
                to_read = {}
                for consumer in self._consumers:
                    spec = consumer.spec
                    with contextlib.suppress(NotFoundError):
                        await js.delete_consumer(spec.stream, spec.durable)
                    await js.add_consumer(spec.stream, consumer_config(spec))
                    info = await js.consumer_info(spec.stream, spec.durable)
                    to_read[spec.stream] = int(info.num_pending or 0)
                # After the durables: a failure in between leaves rows that re-reading
                # adds nothing to, never a durable that skips what the tables lost.
                async with self._pool().acquire() as conn:
                    await tracker_store.truncate(conn)
            except Exception:  # a dependency failed: audited, then the 503 as before
                await self._audit(actor, "failed", {})
                raise
            finally:
                for consumer in self._consumers:
                    consumer.start(self._js)
        await self._audit(actor, "started", to_read)
        return RebuildBody(actor=actor, to_read=to_read)

    async def _audit(self, actor: str, outcome: str, to_read: dict[str, int]) -> None:
        await audit.record(
            self._pool(), actor=actor, action="rebuild", target_kind="tracker",
            target_id="ops-tracker", outcome=outcome,
            detail={f"to_read_{stream.lower()}": n for stream, n in to_read.items()},
        )  # fmt: skip
