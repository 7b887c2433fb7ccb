"""Validated events: a scheduling or billing event after master-data validation.

The validator republishes each source event on ``validated.<entity>.<event>.v1.<site>``
as ``Validated[T]``: its own envelope (new event id, ``causation_id`` = the original's
event id, same correlation id, entity key and entity version), the untouched ``original``
event, and the canonical ids and financial dimensions it resolved (``enrichment``).
A remittance event (payment, adjustment or claim naming a claim) is booked to its claim's
site: its validated envelope's ``site`` is that site and ``site_source`` says so (1.2/1.1).
Each subject still has exactly one concrete class (``ValidatedAppointmentBooked`` …);
``Validated`` is the generic base consumers can match on.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

from carebus_contracts.billing import (
    AdjustmentPosted,
    ChargePosted,
    ChargeReversed,
    ClaimAdjudicatedV2,
    PaymentPosted,
)
from carebus_contracts.envelope import Contract, Event, SchemaVersion
from carebus_contracts.masterdata import Npi, PayerClass, PlaceOfService
from carebus_contracts.scheduling import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCheckedIn,
    AppointmentCompleted,
    AppointmentModified,
    AppointmentNoShow,
    AppointmentRequestCancelled,
    AppointmentRequested,
    AppointmentRescheduled,
)

T = TypeVar("T", bound=Event)


class Enrichment(Contract, frozen=True, kw_only=True):
    """Canonical ids and financial dimensions; None where the event has no such reference."""

    provider_id: str | None = None
    provider_npi: Npi | None = None
    location_id: str | None = None
    department_id: str | None = None
    service_code: str | None = None
    payer_id: str | None = None
    cost_centre: str | None = None
    payer_class: PayerClass | None = None
    place_of_service: PlaceOfService | None = None
    time_zone: str | None = None
    """IANA zone of the location, for local-date accounting."""


class SiteSource(enum.StrEnum):
    """Where a remittance event's booking site (the validated envelope's ``site``) came from,
    when it is not the original's own (docs/decisions/021)."""

    CLAIM = "claim"
    """The site of the claim's charges (the claim id is the charges' encounter)."""
    PAYEE = "payee"
    """The site of the location the payee's NPI is cross-referenced to (the fallback)."""


class Validated(Event, Generic[T], frozen=True, kw_only=True):
    original: T
    enrichment: Enrichment

    @property
    def partition_key(self) -> str:
        """The original's: a claim's events stay in one partition for the mapper too, as
        they were for the validator (docs/decisions/030)."""
        return self.original.partition_key


class ValidatedAppointmentBooked(
    Validated[AppointmentBooked], tag="validated.appointment.booked", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentRescheduled(
    Validated[AppointmentRescheduled],
    tag="validated.appointment.rescheduled",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentModified(
    Validated[AppointmentModified], tag="validated.appointment.modified", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentCancelled(
    Validated[AppointmentCancelled],
    tag="validated.appointment.cancelled",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentNoShow(
    Validated[AppointmentNoShow], tag="validated.appointment.no_show", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentCheckedIn(
    Validated[AppointmentCheckedIn],
    tag="validated.appointment.checked_in",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentCompleted(
    Validated[AppointmentCompleted],
    tag="validated.appointment.completed",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentRequested(
    Validated[AppointmentRequested],
    tag="validated.appointment.requested",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedAppointmentRequestCancelled(
    Validated[AppointmentRequestCancelled],
    tag="validated.appointment.request_cancelled",
    frozen=True,
    kw_only=True,
):
    schema_version: SchemaVersion = "1.0"


class ValidatedChargePosted(
    Validated[ChargePosted], tag="validated.charge.posted", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"


class ValidatedChargeReversed(
    Validated[ChargeReversed], tag="validated.charge.reversed", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.0"


class ValidatedPaymentPosted(
    Validated[PaymentPosted], tag="validated.payment.posted", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.2"
    site_source: SiteSource | None = None
    """Added in 1.2: how the envelope ``site`` was resolved when it is not ``original.site``
    (the claim's charges, or the payee's location); None: the original's site."""


class ValidatedAdjustmentPosted(
    Validated[AdjustmentPosted], tag="validated.adjustment.posted", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.2"
    site_source: SiteSource | None = None
    """Added in 1.2: how the envelope ``site`` was resolved when it is not ``original.site``
    (the claim's charges, or the payee's location); None: the original's site."""


class ValidatedClaimAdjudicated(
    Validated[ClaimAdjudicatedV2], tag="validated.claim.adjudicated", frozen=True, kw_only=True
):
    """Wraps the *current* major (v2); v1 claims are upcast before validation."""

    schema_version: SchemaVersion = "1.1"
    site_source: SiteSource | None = None
    """Added in 1.1: how the envelope ``site`` was resolved when it is not ``original.site``
    (the claim's charges, or the payee's location); None: the original's site."""


VALIDATED_EVENTS: tuple[type[Event], ...] = (
    ValidatedAppointmentBooked,
    ValidatedAppointmentRescheduled,
    ValidatedAppointmentModified,
    ValidatedAppointmentCancelled,
    ValidatedAppointmentNoShow,
    ValidatedAppointmentCheckedIn,
    ValidatedAppointmentCompleted,
    ValidatedAppointmentRequested,
    ValidatedAppointmentRequestCancelled,
    ValidatedChargePosted,
    ValidatedChargeReversed,
    ValidatedPaymentPosted,
    ValidatedAdjustmentPosted,
    ValidatedClaimAdjudicated,
)

VALIDATED_FOR: dict[type[Event], type[Event]] = {
    AppointmentBooked: ValidatedAppointmentBooked,
    AppointmentRescheduled: ValidatedAppointmentRescheduled,
    AppointmentModified: ValidatedAppointmentModified,
    AppointmentCancelled: ValidatedAppointmentCancelled,
    AppointmentNoShow: ValidatedAppointmentNoShow,
    AppointmentCheckedIn: ValidatedAppointmentCheckedIn,
    AppointmentCompleted: ValidatedAppointmentCompleted,
    AppointmentRequested: ValidatedAppointmentRequested,
    AppointmentRequestCancelled: ValidatedAppointmentRequestCancelled,
    ChargePosted: ValidatedChargePosted,
    ChargeReversed: ValidatedChargeReversed,
    PaymentPosted: ValidatedPaymentPosted,
    AdjustmentPosted: ValidatedAdjustmentPosted,
    ClaimAdjudicatedV2: ValidatedClaimAdjudicated,
}
"""The ``Validated…`` type that wraps each (current) source event type."""
