"""Preview: what the mapper would do with one event, without publishing or storing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from carebus_contracts import REGISTRY, ContractDecodeError, UnknownContractError
from carebus_contracts.validated import Validated
from carebus_mapper.domain.fencing import Applied, EntityRef, FenceView, decide
from carebus_mapper.domain.rules import NO_PREVIOUS, RuleSet
from carebus_mapper.handlers.stage import (
    Clock,
    EventResult,
    LoadApplied,
    entity_ref,
    map_event,
    utc_now,
)


class _Head(msgspec.Struct):
    event_type: str
    schema_version: str


_decode_head = msgspec.json.Decoder(_Head).decode


class PreviewRefused(ValueError):
    """The body is not a validated event: a 400 with the reason and the JSON path."""

    def __init__(self, reason: str, message: str, path: str | None = None) -> None:
        self.reason, self.path = reason, path
        super().__init__(message)


@dataclass(frozen=True)
class Preview:
    event: Validated[Any]
    result: EventResult
    fence_decision: str | None
    """apply / duplicate / stale against the stored versions; None when not fenced."""
    applied_version: int | None
    previous_status: str | None


def decode_body(body: bytes) -> Validated[Any]:
    try:
        head = _decode_head(body)
        event = REGISTRY.decode(body, head.event_type, head.schema_version)
    except msgspec.DecodeError as exc:
        raise PreviewRefused("contract_decode_error", f"not a carebus event: {exc}") from None
    except ContractDecodeError as exc:
        raise PreviewRefused("contract_decode_error", str(exc), exc.path) from None
    except UnknownContractError as exc:
        raise PreviewRefused("unknown_contract", str(exc), "$.event_type") from None
    if not isinstance(event, Validated):
        raise PreviewRefused(
            "not_a_validated_event",
            f"{event.event_type} is not a validated event; post a validated.* event",
            "$.event_type",
        )
    return event


async def preview(
    rules: RuleSet, body: bytes, load_applied: LoadApplied | None, clock: Clock = utc_now
) -> Preview:
    """What the mapper would do with this event now — without publishing or storing.

    For a fenced entity the stored version decides ``previous_status`` (as in the stage);
    the journal the rules produce is shown even when the event would be stale, with the
    fence decision beside it.
    """
    event = decode_body(body)
    ref = entity_ref(rules, event)
    loaded: Mapping[EntityRef, Applied] = {}
    if ref is not None and load_applied is not None:
        loaded = await load_applied([ref])
    last = loaded.get(ref) if ref is not None else None
    decision = (
        decide(last, event.entity_version, event.original.event_id).value
        if ref is not None
        else None
    )
    # Map as if it applied now: start from the stored state, not the fence verdict.
    view = FenceView({})
    if ref is not None and last is not None:
        view.apply(ref, Applied(-1, "", last.state))
    result = map_event(rules, event, view, clock())
    previous = ((last.state if last else None) or NO_PREVIOUS) if ref is not None else None
    return Preview(event, result, decision, last.version if last else None, previous)
