"""The interface every ERP connector implements, and how one is chosen by configuration.

Adding an ERP is one module: a class with ``name``, ``atomic_with_inbox``, ``post``,
``confirm`` and ``close``, registered in ``carebus_erp_poster.adapters.connectors``.
See services/erp_poster/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from carebus_erp_poster.domain.journals import JournalState, Posting
from carebus_erp_poster.domain.results import Confirmation, PostResult


class ErpUnavailable(Exception):
    """The ERP cannot answer now (outage, throttling, open circuit, shutting down)."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class ErpConnector(Protocol):
    name: str
    # True: post() writes into the poster's own database and runs inside the transaction
    # that writes the inbox (the ledger). False: post() calls a remote ERP before that
    # transaction; the Idempotency-Key covers a crash between the call and the commit.
    atomic_with_inbox: bool

    async def post(self, conn: Any, postings: Sequence[Posting]) -> list[PostResult]:
        """One result per posting, in order. Never raises for one journal's failure."""
        ...

    async def confirm(self, journals: Sequence[JournalState]) -> list[Confirmation]:
        """Where pending journals stand now, in order; raises ErpUnavailable."""
        ...

    async def interrupt(self) -> None:
        """Shutting down: stop waiting (breaker, rate limit) and answer Unavailable."""
        ...
