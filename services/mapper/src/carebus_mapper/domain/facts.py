"""What the rules can see of a validated event: selectors, named amounts, dates, dimensions.

One function per event family reads the contract structs; everything downstream (matching,
journal building) works on :class:`Facts` only, so a rule never reaches into a payload.
The tables ``AMOUNTS``, ``DATES`` and ``SELECTORS`` say statically what each event type
offers, which is what lets the rule loader refuse a rule that reads something its events
never carry.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from carebus_contracts import billing as b
from carebus_contracts import scheduling as s
from carebus_contracts import validated as v
from carebus_contracts.envelope import Money
from carebus_mapper.domain.amounts import Amount, UnitMismatch

APPOINTMENT_EVENTS: Final = tuple(
    f"appointment.{name}"
    for name in (
        "booked",
        "rescheduled",
        "modified",
        "cancelled",
        "no_show",
        "checked_in",
        "completed",
    )
)
REQUEST_EVENTS: Final = ("appointment.requested", "appointment.request_cancelled")
"""Appointment requests: an appointment without a slot (fenced as the appointment)."""
CLAIM_GROUPS: Final = tuple(g.value for g in b.CarcGroup)

AMOUNTS: Final[dict[str, frozenset[str]]] = {
    **{e: frozenset({"visits", "expected_fee"}) for e in APPOINTMENT_EVENTS + REQUEST_EVENTS},
    "charge.posted": frozenset({"charge", "units"}),
    "charge.reversed": frozenset({"charge", "units"}),
    "payment.posted": frozenset({"payment"}),
    "adjustment.posted": frozenset({"adjustment"}),
    "claim.adjudicated": frozenset(
        {"claims", "billed", "paid", "patient_responsibility", "adjustments"}
        | {f"adj_{g.lower()}" for g in CLAIM_GROUPS}
    ),
}
"""Named amounts per event type (the event type without its ``validated.`` prefix)."""

EVENT_TYPES: Final = frozenset(AMOUNTS)

DATES: Final[dict[str, frozenset[str]]] = {
    **{e: frozenset({"occurred", "slot_date"}) for e in APPOINTMENT_EVENTS},
    **{e: frozenset({"occurred"}) for e in REQUEST_EVENTS},
    "charge.posted": frozenset({"occurred", "service_date"}),
    "charge.reversed": frozenset({"occurred", "service_date"}),
    "payment.posted": frozenset({"occurred", "received_on"}),
    "adjustment.posted": frozenset({"occurred"}),
    "claim.adjudicated": frozenset({"occurred", "adjudicated_on"}),
}

DIMENSIONS: Final = ("cost_centre", "department", "location", "payer_class", "provider")

# Where each dimension comes from, for exception paths.
DIMENSION_PATHS: Final = {
    "cost_centre": "$.enrichment.cost_centre",
    "department": "$.enrichment.department_id",
    "location": "$.enrichment.location_id",
    "payer_class": "$.enrichment.payer_class",
    "provider": "$.enrichment.provider_id",
}

SELECTORS: Final = (
    "site",
    "source_system",
    "department",
    "location",
    "service",
    "payer",
    "payer_class",
    "provider",
    "cost_centre",
    "place_of_service",
    "self_pay",
    "carc_group",
    "carc_reason",
    "adjustment_scope",
    "claim_status",
    "payment_method",
    "appointment_status",
    "previous_status",
)

# Texts a journal description may quote: identifiers and codes, never patient data.
TEXT_FIELDS: Final = frozenset({"event", "site", "entity_key", *SELECTORS})


# The mapper's per-event values (facts, amounts, line drafts, outcomes) are frozen msgspec
# Structs rather than frozen dataclasses: immutable alike, far cheaper to construct
# (docs/decisions/011).
class Facts(msgspec.Struct, frozen=True):
    event: str
    """The event type without ``validated.``, e.g. ``charge.posted``."""
    site: str
    entity: str
    entity_key: str
    entity_version: int
    source_event_id: str
    """The original (scheduling or billing) event's id: stable across re-validation."""
    validated_event_id: str
    correlation_id: str
    occurred_at: dt.datetime
    selectors: Mapping[str, str | None]
    amounts: Mapping[str, Amount]
    dates: Mapping[str, dt.date]
    dimensions: Mapping[str, str | None]


class UnsupportedEvent(TypeError):
    """A validated event type the mapper does not know (a newer contract)."""


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> dt.tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_date(moment: dt.datetime, time_zone: str | None) -> dt.date:
    """The calendar date of ``moment`` at the location (else in the moment's own offset)."""
    zone = _zone(time_zone) if time_zone else None
    return (moment.astimezone(zone) if zone else moment).date()


def _money(value: Money) -> Amount:
    return Amount(value.amount_minor, value.currency)


def _sum(values: list[Money], currency: str) -> Amount:
    total = Amount(0, currency)
    for value in values:
        amount = _money(value)
        total = Amount(total.minor + amount.minor, total.combine_unit(amount))
    return total


def _claim_amounts(claim: b.ClaimAdjudicatedV2) -> dict[str, Amount]:
    currency = claim.totals.billed.currency
    adjustments = [*claim.claim_adjustments]
    for line in claim.service_lines:
        adjustments.extend(line.adjustments)
    amounts = {
        "billed": _money(claim.totals.billed),
        "paid": _money(claim.totals.paid),
        "patient_responsibility": _money(claim.totals.patient_responsibility)
        if claim.totals.patient_responsibility
        else Amount(0, currency),
        "adjustments": _sum([a.amount for a in adjustments], currency),
    }
    for group in CLAIM_GROUPS:
        amounts[f"adj_{group.lower()}"] = _sum(
            [a.amount for a in adjustments if a.group_code.value == group], currency
        )
    return amounts


def extract(
    event: v.Validated[Any],
    *,
    fee_schedule: Mapping[str, int],
    fee_currency: str,
    statistical_unit: str,
    previous_status: str | None = None,
) -> Facts:
    """Read ``event`` into :class:`Facts`; raise UnsupportedEvent or UnitMismatch.

    ``previous_status`` is the state of the last applied event of a fenced entity (``none``
    before the first), None for entities that are not fenced.
    """
    name = event.event_type.removeprefix("validated.")
    if name not in EVENT_TYPES:
        raise UnsupportedEvent(f"no facts for {event.event_type}")
    # The steps get the event's parts read once: events come in many types, and reading
    # an attribute of one again costs more than passing it on (this runs per event).
    enrichment = event.enrichment
    original = event.original
    payer_class = enrichment.payer_class.value if enrichment.payer_class else None
    selectors = _selectors(event.site, original, enrichment, payer_class, previous_status)
    amounts: dict[str, Amount] = {}
    dates: dict[str, dt.date] = {"occurred": local_date(event.occurred_at, enrichment.time_zone)}
    has_payer = _read_original(
        event, original, enrichment, selectors, amounts, dates,
        fee_schedule, fee_currency, statistical_unit,
    )  # fmt: skip
    self_pay = payer_class == "self_pay" or not has_payer
    selectors["self_pay"] = "true" if self_pay else "false"
    return _facts(event, name, original, enrichment, payer_class, selectors, amounts, dates)


def _selectors(
    site: str,
    original: Any,
    enrichment: v.Enrichment,
    payer_class: str | None,
    previous_status: str | None,
) -> dict[str, str | None]:
    """The selectors of every event; its family adds its own."""
    return {
        "site": site,
        "source_system": original.source_system,
        "department": enrichment.department_id,
        "location": enrichment.location_id,
        "service": enrichment.service_code,
        "payer": enrichment.payer_id,
        "payer_class": payer_class,
        "provider": enrichment.provider_id,
        "cost_centre": enrichment.cost_centre,
        "place_of_service": enrichment.place_of_service,
        "previous_status": previous_status,
    }


def _read_original(
    event: v.Validated[Any],
    original: Any,
    enrichment: v.Enrichment,
    selectors: dict[str, str | None],
    amounts: dict[str, Amount],
    dates: dict[str, dt.date],
    fee_schedule: Mapping[str, int],
    fee_currency: str,
    statistical_unit: str,
) -> bool:
    """Add what the event's family offers; return whether the event names a payer.

    Billing events without a payer code are the patient's own; appointments carry no
    payer at all, so for them only the enrichment's payer class can say self-pay.
    """
    if isinstance(original, b.ChargePosted | b.ChargeReversed):
        return _charge(original.charge, statistical_unit, amounts, dates)
    if isinstance(original, b.PaymentPosted):
        return _payment(original, selectors, amounts, dates)
    if isinstance(original, b.AdjustmentPosted):
        return _adjustment(original, selectors, amounts)
    if isinstance(original, b.ClaimAdjudicatedV2):
        return _claim(original, statistical_unit, selectors, amounts, dates)
    appointment = getattr(original, "appointment", None)
    request = getattr(original, "request", None)
    body = appointment if appointment is not None else request
    if body is None:
        raise UnsupportedEvent(f"no facts for {event.event_type}")
    amounts["visits"] = Amount(1, statistical_unit)
    service = enrichment.service_code or body.service_code
    fee = fee_schedule.get(service or "", fee_schedule.get("default"))
    if fee is not None:
        amounts["expected_fee"] = Amount(fee, fee_currency)
    if appointment is not None:
        dates["slot_date"] = local_date(appointment.slot_start, enrichment.time_zone)
        selectors["appointment_status"] = appointment.status.value
    else:
        # A request has no slot; the state it leaves is "requested", or "cancelled".
        cancelled = body.status is s.AppointmentRequestStatus.CANCELLED
        selectors["appointment_status"] = "cancelled" if cancelled else "requested"
    return True


def _charge(
    charge: b.Charge, statistical_unit: str, amounts: dict[str, Amount], dates: dict[str, dt.date]
) -> bool:
    amounts["charge"] = _money(charge.amount)
    amounts["units"] = Amount(charge.units, statistical_unit)
    dates["service_date"] = charge.service_date
    return charge.payer_code is not None


def _payment(
    payment: b.PaymentPosted,
    selectors: dict[str, str | None],
    amounts: dict[str, Amount],
    dates: dict[str, dt.date],
) -> bool:
    amounts["payment"] = _money(payment.amount)
    dates["received_on"] = payment.received_on
    selectors["payment_method"] = payment.method.value if payment.method else None
    return payment.payer_code is not None


def _adjustment(
    adjustment: b.AdjustmentPosted, selectors: dict[str, str | None], amounts: dict[str, Amount]
) -> bool:
    amounts["adjustment"] = _money(adjustment.amount)
    selectors["carc_group"] = adjustment.group_code.value
    selectors["carc_reason"] = adjustment.reason_code
    scope = getattr(adjustment, "scope", None)  # AdjustmentPosted 1.1
    selectors["adjustment_scope"] = str(scope.value) if scope is not None else None
    return adjustment.payer_code is not None


def _claim(
    claim: b.ClaimAdjudicatedV2,
    statistical_unit: str,
    selectors: dict[str, str | None],
    amounts: dict[str, Amount],
    dates: dict[str, dt.date],
) -> bool:
    amounts.update(_claim_amounts(claim))
    amounts["claims"] = Amount(1, statistical_unit)
    dates["adjudicated_on"] = claim.adjudicated_on
    selectors["claim_status"] = claim.status.value
    return claim.payer_code is not None


def _facts(
    event: v.Validated[Any],
    name: str,
    original: Any,
    enrichment: v.Enrichment,
    payer_class: str | None,
    selectors: dict[str, str | None],
    amounts: dict[str, Amount],
    dates: dict[str, dt.date],
) -> Facts:
    return Facts(
        event=name,
        site=event.site,
        entity=name.split(".")[0],
        entity_key=event.entity_key,
        entity_version=event.entity_version,
        source_event_id=original.event_id,
        validated_event_id=event.event_id,
        correlation_id=event.correlation_id,
        occurred_at=event.occurred_at,
        selectors=selectors,
        amounts=amounts,
        dates=dates,
        dimensions={
            "cost_centre": enrichment.cost_centre,
            "department": enrichment.department_id,
            "location": enrichment.location_id,
            "payer_class": payer_class,
            "provider": enrichment.provider_id,
        },
    )


__all__ = ["Facts", "UnitMismatch", "UnsupportedEvent", "extract", "local_date"]
