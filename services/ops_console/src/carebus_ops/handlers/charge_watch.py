"""Completed without charge, swept every few seconds: overdue visits become work items and
exception records; those a charge (or a status change) settled are resolved. One
transaction per sweep, so an item and its record appear and resolve together."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from carebus_ops.adapters import charge_watch_store as store
from carebus_ops.domain.charge_watch import STAGE, ChargeWait

log = logging.getLogger(__name__)


class ChargeWatch:
    def __init__(self, pool: Callable[[], asyncpg.Pool], wait: ChargeWait) -> None:
        self._pool = pool
        self.wait = wait

    async def sweep(self) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            # Resolve first: an item whose charge arrived since the last sweep is not
            # reopened by the same transaction.
            resolved = await store.resolve_items(conn, STAGE)
            opened = await store.open_items(conn, self.wait)
        if opened or resolved:
            log.info("completed without charge", extra={"opened": opened, "resolved": resolved})
