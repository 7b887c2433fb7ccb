"""Check a built event against its contract's constraints before it is published.

msgspec validates constraints (non-empty ids, aware datetimes) on decode, not when a struct
is constructed; an event that would fail its consumers' decode must be rejected here, where
the sender still gets an answer, not found out one hop later.
"""

from __future__ import annotations

from typing import TypeVar

from carebus_contracts import ContractDecodeError, Event, decode_as, encode

E = TypeVar("E", bound=Event)


class ContractViolation(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{reason} at {path}")


def checked(event: E) -> E:
    try:
        decode_as(type(event), encode(event))
    except ContractDecodeError as exc:
        raise ContractViolation(exc.path, exc.reason) from exc
    return event
