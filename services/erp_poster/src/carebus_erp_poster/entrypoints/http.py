"""HTTP routes of the poster: where one journal stands (for support and reconciliation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from litestar import get
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from carebus_erp_poster.adapters import repository as repo
from carebus_shared.auth.scopes import JOURNALS_READ, requires


def routes(pool: Callable[[], asyncpg.Pool]) -> list[HTTPRouteHandler]:
    @get("/journals/{journal_id:str}", **requires(JOURNALS_READ))
    async def journal_status(journal_id: str) -> dict[str, Any]:
        async with pool().acquire() as conn:
            found = await repo.states(conn, [journal_id])
        state = found.get(journal_id)
        if state is None:
            raise NotFoundException(f"no journal {journal_id}")
        return {
            field: getattr(state, field)
            for field in (
                "journal_id", "connector", "status", "attempt", "erp_request_id", "posted_at",
                "confirmed_at", "rejected_at", "document_number", "fiscal_period", "error_code",
                "error_message",
            )
        }  # fmt: skip

    return [journal_status]
