"""The delivery log (carebus_outbound.delivery): what was delivered, and each attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Attempt:
    feed: str
    event_id: str
    receiver: str
    control_id: str
    channel: str
    site: str
    status: str  # pending, delivered, refused
    answer: str


async def delivered(conn: Any, feed: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (event id, receiver) pairs this feed delivered already (and count the
    redelivery)."""
    rows = await conn.fetch(
        "UPDATE carebus_outbound.delivery d SET redeliveries = redeliveries + 1 "
        "FROM unnest($2::text[], $3::text[]) AS k(event_id, receiver) "
        "WHERE d.feed = $1 AND d.event_id = k.event_id AND d.receiver = k.receiver "
        "AND d.status = 'delivered' RETURNING d.event_id, d.receiver",
        feed,
        [event_id for event_id, _ in keys],
        [receiver for _, receiver in keys],
    )
    return {(str(row["event_id"]), str(row["receiver"])) for row in rows}


async def record(conn: Any, attempt: Attempt) -> None:
    """One attempt's result; a delivered message stays delivered."""
    await conn.execute(
        """
        INSERT INTO carebus_outbound.delivery
               (feed, event_id, receiver, control_id, channel, site, status, attempts,
                answer, delivered_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8,
                CASE WHEN $7 = 'delivered' THEN now() END)
        ON CONFLICT (feed, event_id, receiver) DO UPDATE
           SET attempts = delivery.attempts + 1, last_try_at = now(),
               answer = EXCLUDED.answer, channel = EXCLUDED.channel,
               status = CASE WHEN delivery.status = 'delivered' THEN 'delivered'
                             ELSE EXCLUDED.status END,
               delivered_at = coalesce(delivery.delivered_at, EXCLUDED.delivered_at)
        """,
        attempt.feed,
        attempt.event_id,
        attempt.receiver,
        attempt.control_id,
        attempt.channel,
        attempt.site,
        attempt.status,
        attempt.answer,
    )


async def summary(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT feed, channel, status, count(*) AS messages, sum(attempts) AS attempts, "
        "sum(redeliveries) AS redeliveries FROM carebus_outbound.delivery "
        "GROUP BY feed, channel, status ORDER BY feed, channel, status"
    )
    return [dict(row) for row in rows]
