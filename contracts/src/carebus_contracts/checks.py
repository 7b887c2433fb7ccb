"""Check a built event against its contract before it is published.

msgspec validates constraints (non-empty ids, aware datetimes, ``units >= 1``) on decode, not
when a struct is constructed; an event its consumers would refuse must be caught by whoever
builds it, where the input can still be rejected to its sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from carebus_contracts.envelope import Event
from carebus_contracts.registry import ContractDecodeError, decode_as, encode

E = TypeVar("E", bound=Event)


class ContractViolation(ValueError):
    """Names the event type, the field path and the rule; never the value."""

    def __init__(self, event_type: str, path: str, reason: str) -> None:
        self.event_type = event_type
        self.path = path
        self.reason = reason
        super().__init__(f"{event_type} would break its contract: {reason} at {path}")


def checked(event: E) -> E:
    """``event`` itself, or ContractViolation."""
    try:
        decode_as(type(event), encode(event), event.schema_version)
    except ContractDecodeError as exc:
        raise ContractViolation(event.event_type, exc.path, exc.reason) from None
    return event


def all_checked(events: Sequence[E]) -> list[E]:
    return [checked(event) for event in events]
