"""Check a built event against its contract before it is published.

msgspec validates constraints (non-empty ids, aware datetimes, ``units >= 1``) on decode, not
when a struct is constructed; an event its consumers would refuse must be caught by whoever
builds it, where the input can still be rejected to its sender.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import msgspec

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


# Text no consumer can store (PostgreSQL text refuses NUL; UTF-8 cannot carry a lone
# surrogate): refused here, where the sender still gets an answer.
_NUL = b"\\u0000"


def checked(event: E) -> E:
    """``event`` itself, or ContractViolation."""
    try:
        data = encode(event)
    except UnicodeEncodeError:
        raise _unstorable(event, "a lone surrogate") from None
    if _NUL in data and (path := unstorable_text_path(event)) is not None:
        raise ContractViolation(event.event_type, path, "text must not contain a NUL character")
    try:
        decode_as(type(event), data, event.schema_version)
    except ContractDecodeError as exc:
        raise ContractViolation(event.event_type, exc.path, exc.reason) from None
    return event


def _unstorable(event: Event, what: str) -> ContractViolation:
    path = unstorable_text_path(event) or "$"
    return ContractViolation(event.event_type, path, f"text must not contain {what}")


def unstorable_text_path(value: msgspec.Struct) -> str | None:
    """The path of the first text holding NUL or a lone surrogate, e.g. "$.name"; None when
    all of it can be stored."""
    return next(_paths_of_unstorable_text(msgspec.to_builtins(value), "$"), None)


def _paths_of_unstorable_text(value: object, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths_of_unstorable_text(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _paths_of_unstorable_text(item, f"{path}[{index}]")


def all_checked(events: Sequence[E]) -> list[E]:
    return [checked(event) for event in events]
