"""Upcasters: turn an event of an older major version into the next major, in memory.

Consumers only ever handle the current major of a contract.  When a producer (or a replay
of an old stream) delivers an older major, :func:`upcast` applies registered one-step
upcasters (v1→v2, v2→v3, …) until the current major is reached.  Register one with::

    @upcaster(ClaimAdjudicated, ClaimAdjudicatedV2)
    def _claim_v1_to_v2(old: ClaimAdjudicated) -> ClaimAdjudicatedV2: ...

An upcaster keeps the envelope (same event id, entity key and version) and must not do
I/O: it only reshapes data, so replays stay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from carebus_contracts.envelope import Event, event_type_of, version_of

S = TypeVar("S", bound=Event)
T = TypeVar("T", bound=Event)

# (event type, source major) -> (target class, function)
_UPCASTERS: dict[tuple[str, int], tuple[type[Event], Callable[[Any], Event]]] = {}


class UpcastError(LookupError):
    """No chain of upcasters leads from the event's major to the requested one."""


def upcaster(source: type[S], target: type[T]) -> Callable[[Callable[[S], T]], Callable[[S], T]]:
    """Register ``fn`` as the one-step upcaster from ``source`` to ``target``."""
    event_type = event_type_of(source)
    source_major, target_major = version_of(source)[0], version_of(target)[0]
    if event_type_of(target) != event_type or target_major != source_major + 1:
        raise ValueError(
            f"an upcaster goes from one major to the next of the same event type, "
            f"not {event_type} v{source_major} -> {event_type_of(target)} v{target_major}"
        )

    def register(fn: Callable[[S], T]) -> Callable[[S], T]:
        key = (event_type, source_major)
        if key in _UPCASTERS:
            raise ValueError(f"duplicate upcaster for {event_type} v{source_major}")
        _UPCASTERS[key] = (target, fn)
        return fn

    return register


def upcast(event: Event, to_major: int) -> Event:
    """Apply upcasters until ``event`` is of major ``to_major``."""
    event_type = event_type_of(type(event))
    major = version_of(type(event))[0]
    while major < to_major:
        step = _UPCASTERS.get((event_type, major))
        if step is None:
            raise UpcastError(f"no upcaster for {event_type} from v{major} to v{major + 1}")
        target, fn = step
        event = fn(event)
        if not isinstance(event, target):
            raise UpcastError(f"upcaster for {event_type} v{major} returned {type(event)}")
        major += 1
    if major != to_major:
        raise UpcastError(f"cannot downcast {event_type} from v{major} to v{to_major}")
    return event


def registered_upcasters() -> dict[tuple[str, int], type[Event]]:
    """(event type, source major) -> target class, for the registry and the docs."""
    return {key: target for key, (target, _) in _UPCASTERS.items()}
