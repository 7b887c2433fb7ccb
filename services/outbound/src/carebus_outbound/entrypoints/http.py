"""HTTP routes of the outbound feeds: what each feed delivered, refused or still owes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from litestar import get
from litestar.handlers import HTTPRouteHandler

from carebus_outbound.adapters import delivery_log


def routes(pool: Callable[[], asyncpg.Pool]) -> list[HTTPRouteHandler]:
    @get("/v1/deliveries")
    async def deliveries() -> dict[str, Any]:
        """Per feed, channel and status: messages, attempts, redeliveries after delivery."""
        async with pool().acquire() as conn:
            return {"deliveries": await delivery_log.summary(conn)}

    return [deliveries]
