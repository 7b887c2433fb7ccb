"""Guard against a FastStream 0.7 / nats-py 2.16 defect in pull consumers.

nats-py's ``PullSubscription.fetch()`` can raise a plain ``asyncio.TimeoutError`` (or a
``ValueError`` for a deadline already past) where FastStream's pull loop only catches
``nats.errors.TimeoutError``. The consume task then dies and restarts, and with batch pull
subscribers the messages already fetched for that batch are never acked: they come back only
after the ack deadline, 30-60 s late. We translate both into ``nats.errors.TimeoutError``,
which every caller already treats as "no messages this time".
"""

from __future__ import annotations

import functools
from typing import Any

import nats.errors
from nats.js.client import JetStreamContext

_GUARD_FLAG = "_carebus_fetch_guard"


def install_fetch_timeout_guard() -> None:
    """Patch ``PullSubscription.fetch`` once per process (idempotent)."""
    cls = JetStreamContext.PullSubscription
    original = cls.fetch
    if getattr(original, _GUARD_FLAG, False):
        return

    @functools.wraps(original)
    async def fetch(self: Any, batch: int = 1, timeout: float | None = 5, **kwargs: Any) -> Any:
        if timeout is not None and timeout <= 0.001:
            raise nats.errors.TimeoutError  # deadline already spent
        try:
            return await original(self, batch, timeout, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    setattr(fetch, _GUARD_FLAG, True)
    cls.fetch = fetch  # type: ignore[method-assign,assignment]
