"""A call that swallows a cancel, as nats-py's flush does (it catches CancelledError and
returns): for tests of stops that must still end the loop around it."""

from __future__ import annotations

import asyncio


class SwallowsOneCancel:
    """Swallows the first cancel landing in it and lets any later one through (so that a
    failing run still ends); answers ``result``."""

    def __init__(self, result: int = 0) -> None:
        self.result = result
        self.swallowed = 0
        self.calls = 0

    async def __call__(self, *_: object) -> int:
        self.calls += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1
        return self.result
