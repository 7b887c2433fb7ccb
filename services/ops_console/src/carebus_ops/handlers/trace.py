"""Tracing one entity: its steps, then its linked entities a few hops out (bounded)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from carebus_ops.adapters import trace_store
from carebus_ops.domain.projection import KINDS
from carebus_ops.domain.trace import DEPTH, Entity, Trace, assemble
from carebus_shared import audit


class UnknownKind(ValueError):
    """The kind is none the tracker follows."""


async def trace(
    pool: Callable[[], asyncpg.Pool], kind: str, key: str, max_linked: int, *, actor: str
) -> Trace | None:
    """The trace of ``kind`` ``key``; None when the tracker never saw it. A trace names a
    patient's appointments and charges: every look is audited, found or not."""
    if kind not in KINDS:
        raise UnknownKind(f"kind must be one of {', '.join(KINDS)}")
    found = await _trace(pool, kind, key, max_linked)
    await audit.record(
        pool(), actor=actor, action="phi_view", target_kind=kind, target_id=key,
        outcome="shown" if found else "not_found",
        detail={"linked": len(found.linked) if found else 0},
    )  # fmt: skip
    return found


async def _trace(
    pool: Callable[[], asyncpg.Pool], kind: str, key: str, max_linked: int
) -> Trace | None:
    root: Entity = (kind, key)
    async with pool().acquire() as conn:
        own = await trace_store.steps(conn, [root])
        if not any(s.kind == kind and s.id == key for s in own):
            return None
        reached: dict[Entity, str | None] = {root: None}
        frontier, truncated = [root], False
        for _ in range(DEPTH):
            found = [
                (near, far)
                for near, far in await trace_store.neighbours(conn, frontier)
                if far not in reached
            ]
            frontier = []
            for near, far in found:
                if far in reached:
                    continue
                if len(reached) > max_linked:
                    truncated = True
                    break
                reached[far] = f"{near[0]}:{near[1]}"
                frontier.append(far)
            if not frontier:
                break
        others = [e for e in reached if e != root]
        steps = own + (await trace_store.steps(conn, others) if others else [])
    return assemble(root, reached, steps, truncated=truncated)
