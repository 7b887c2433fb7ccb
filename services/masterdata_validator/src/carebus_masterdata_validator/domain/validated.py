"""Wrapping a source event and its enrichment as its ``Validated…`` event (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from carebus_contracts import validated as v
from carebus_contracts.envelope import Event
from carebus_shared.jetstream.publish import stage_msg_id

STAGE: Final = "masterdata-validator"
SOURCE_SYSTEM: Final = "carebus-masterdata-validator"

VALIDATED_FOR: Final[dict[type[Event], Callable[..., Event]]] = dict(v.VALIDATED_FOR)


def validated_event(original: Event, enrichment: v.Enrichment, now: datetime) -> Event:
    """The validated event; its id derives from the original's, so a re-publish is a duplicate."""
    wrapper = VALIDATED_FOR[type(original)]
    return wrapper(
        event_id=stage_msg_id(STAGE, original.event_id),
        occurred_at=original.occurred_at,
        recorded_at=now,
        source_system=SOURCE_SYSTEM,
        site=original.site,
        correlation_id=original.correlation_id,
        causation_id=original.event_id,
        entity_key=original.entity_key,
        entity_version=original.entity_version,
        original=original,
        enrichment=enrichment,
    )
