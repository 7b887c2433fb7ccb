"""Wrapping a source event and its enrichment as its ``Validated…`` event (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from carebus_contracts import validated as v
from carebus_contracts.envelope import Event
from carebus_masterdata_validator.domain.claim_sites import Booking
from carebus_shared.jetstream.publish import stage_msg_id

STAGE: Final = "masterdata-validator"
SOURCE_SYSTEM: Final = "carebus-masterdata-validator"

VALIDATED_FOR: Final[dict[type[Event], Callable[..., Event]]] = dict(v.VALIDATED_FOR)


def validated_event(
    original: Event, enrichment: v.Enrichment, now: datetime, booking: Booking | None = None
) -> Event:
    """The validated event; its id derives from the original's, so a re-publish is a duplicate.

    A remittance event with a ``booking`` goes to the booked site (its claim's, or its payee's
    location's): the envelope's ``site``, ``site_source`` and, unless the event named one, the
    enrichment's location."""
    wrapper = VALIDATED_FOR[type(original)]
    booked: dict[str, Any] = {}
    if booking is not None:
        booked["site_source"] = booking.source
        if enrichment.location_id is None and booking.location_id is not None:
            enrichment = msgspec.structs.replace(enrichment, location_id=booking.location_id)
    return wrapper(
        event_id=stage_msg_id(STAGE, original.event_id),
        occurred_at=original.occurred_at,
        recorded_at=now,
        source_system=SOURCE_SYSTEM,
        site=booking.site if booking is not None else original.site,
        correlation_id=original.correlation_id,
        causation_id=original.event_id,
        entity_key=original.entity_key,
        entity_version=original.entity_version,
        original=original,
        enrichment=enrichment,
        **booked,
    )
