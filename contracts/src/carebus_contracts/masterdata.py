"""Master data, v1: the canonical reference entities and their change events.

Records are published whole on every change (``upserted``) or retirement
(``deactivated``), keyed by their canonical id, so a consumer can rebuild its cache from
the MASTERDATA stream alone.  :class:`CrossReference` maps a source system's code to a
canonical id; it is what lets the validator enrich scheduling and billing events.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from carebus_contracts.envelope import Contract, Event, NonEmptyStr, SchemaVersion

Npi = Annotated[str, msgspec.Meta(pattern="^[0-9]{10}$")]
# CMS place-of-service code, two digits, e.g. "11" (office).
PlaceOfService = Annotated[str, msgspec.Meta(pattern="^[0-9]{2}$")]
# UB-04 revenue code, four digits, e.g. "0510" (clinic).
RevenueCode = Annotated[str, msgspec.Meta(pattern="^[0-9]{4}$")]


class ChangeKind(enum.StrEnum):
    UPSERTED = "upserted"
    DEACTIVATED = "deactivated"


class CodeSystem(enum.StrEnum):
    CPT = "CPT"
    HCPCS = "HCPCS"


class PayerClass(enum.StrEnum):
    COMMERCIAL = "commercial"
    MEDICARE = "medicare"
    MEDICAID = "medicaid"
    SELF_PAY = "self_pay"
    OTHER_GOVERNMENT = "other_government"
    OTHER = "other"


class EntityKind(enum.StrEnum):
    PROVIDER = "provider"
    LOCATION = "location"
    DEPARTMENT = "department"
    SERVICE = "service"
    PAYER = "payer"
    COST_CENTRE = "cost_centre"


class Provider(Contract, frozen=True, kw_only=True):
    provider_id: NonEmptyStr
    npi: Npi
    name: NonEmptyStr
    taxonomy_code: str | None = None
    department_id: str | None = None
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class Address(Contract, frozen=True, kw_only=True):
    lines: tuple[str, ...] = ()
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Location(Contract, frozen=True, kw_only=True):
    location_id: NonEmptyStr
    name: NonEmptyStr
    site_code: str | None = None
    """The carebus site (event ``site``) the location belongs to (added in 1.1)."""
    address: Address | None = None
    """Added in 1.1."""
    place_of_service: PlaceOfService
    time_zone: NonEmptyStr
    """IANA zone name, e.g. "America/Chicago"."""
    cost_centre_id: str | None = None
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class Department(Contract, frozen=True, kw_only=True):
    department_id: NonEmptyStr
    name: NonEmptyStr
    cost_centre_id: NonEmptyStr
    location_id: str | None = None
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class Service(Contract, frozen=True, kw_only=True):
    service_code: NonEmptyStr
    code_system: CodeSystem
    description: str
    revenue_code: RevenueCode | None = None
    """Added in 1.1."""
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class Payer(Contract, frozen=True, kw_only=True):
    payer_id: NonEmptyStr
    name: NonEmptyStr
    payer_class: PayerClass
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class CostCentre(Contract, frozen=True, kw_only=True):
    cost_centre_id: NonEmptyStr
    name: NonEmptyStr
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class CrossReference(Contract, frozen=True, kw_only=True):
    source_system: NonEmptyStr
    kind: EntityKind
    source_code: NonEmptyStr
    canonical_id: NonEmptyStr
    active: bool = True
    valid_from: dt.date | None = None
    """First day the record is in effect (added in 1.1); None: since always."""
    valid_to: dt.date | None = None
    """Last day the record is in effect, inclusive (added in 1.1); None: open-ended."""


class ProviderChanged(Event, tag="masterdata.provider.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    provider: Provider


class LocationChanged(Event, tag="masterdata.location.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    location: Location


class DepartmentChanged(Event, tag="masterdata.department.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    department: Department


class ServiceChanged(Event, tag="masterdata.service.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    service: Service


class PayerChanged(Event, tag="masterdata.payer.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    payer: Payer


class CostCentreChanged(Event, tag="masterdata.cost_centre.changed", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    cost_centre: CostCentre


class CrossReferenceChanged(
    Event, tag="masterdata.cross_reference.changed", frozen=True, kw_only=True
):
    schema_version: SchemaVersion = "1.1"
    change: ChangeKind
    cross_reference: CrossReference


MASTERDATA_EVENTS: tuple[type[Event], ...] = (
    ProviderChanged,
    LocationChanged,
    DepartmentChanged,
    ServiceChanged,
    PayerChanged,
    CostCentreChanged,
    CrossReferenceChanged,
)
