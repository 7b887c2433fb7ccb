"""Check events against their contracts before publishing them.

msgspec validates constraints (non-empty strings, ``units >= 1``, ISO currency) on decode, not
on construction, so a mapped event could carry a value its consumers would refuse. Decoding
our own encoding catches that here, where the input can still be rejected to its sender.
"""

from __future__ import annotations

from collections.abc import Sequence

from carebus_contracts import ContractDecodeError, Event, decode_as, encode


class ContractViolation(ValueError):
    def __init__(self, event: Event, error: ContractDecodeError) -> None:
        self.event_type = event.event_type
        self.path = error.path
        self.reason = error.reason
        super().__init__(
            f"{event.event_type} would break its contract: {error.reason} at {error.path}"
        )


def checked(events: Sequence[Event]) -> list[Event]:
    for event in events:
        try:
            decode_as(type(event), encode(event), event.schema_version)
        except ContractDecodeError as exc:
            raise ContractViolation(event, exc) from None
    return list(events)
