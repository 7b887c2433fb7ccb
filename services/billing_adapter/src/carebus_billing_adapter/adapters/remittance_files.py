"""The 835 files already posted, in the service's own schema (see migration 002).

JetStream's duplicate window (24 h on BILLING) drops re-published event ids only for a day;
remembering each posted file's digest recognises a re-delivery at any later time.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec


class PostedFile(msgspec.Struct, frozen=True, kw_only=True):
    digest: str
    transactions: int
    claims: int
    payment_total_minor: int  # sum of BPR02 over the file's transactions
    events: int


_SEEN = """
UPDATE carebus_billing_adapter.remittance_file
   SET deliveries = deliveries + 1, last_seen_at = now()
 WHERE digest = $1
RETURNING digest, transactions, claims, payment_total_minor, events
"""

_REMEMBER = """
INSERT INTO carebus_billing_adapter.remittance_file
    (digest, origin, transactions, claims, payment_total_minor, events)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (digest) DO NOTHING
"""


class RemittanceFiles:
    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool  # the runtime opens the pool after start-up, hence a callable

    async def seen(self, digest: str) -> PostedFile | None:
        """The earlier posting of this file (and count this delivery), or None."""
        row = await self._pool().fetchrow(_SEEN, digest)
        return None if row is None else PostedFile(**dict(row))

    async def remember(self, posted: PostedFile, origin: str) -> None:
        await self._pool().execute(
            _REMEMBER,
            posted.digest,
            origin,
            posted.transactions,
            posted.claims,
            posted.payment_total_minor,
            posted.events,
        )
