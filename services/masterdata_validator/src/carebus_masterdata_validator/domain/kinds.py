"""The kinds of master data: how each is identified, stored, filtered and announced.

One :class:`KindSpec` per entity kind drives the generic parts (repository, API routes,
change events, KV keys), so the six entities and the cross-references share one code path.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import msgspec

from carebus_contracts.envelope import Contract, Event
from carebus_contracts.masterdata import (
    ChangeKind,
    CostCentre,
    CostCentreChanged,
    CrossReference,
    CrossReferenceChanged,
    Department,
    DepartmentChanged,
    EntityKind,
    Location,
    LocationChanged,
    Payer,
    PayerChanged,
    Provider,
    ProviderChanged,
    Service,
    ServiceChanged,
)
from carebus_shared.jetstream.publish import stage_msg_id

SOURCE_SYSTEM: Final = "carebus-masterdata"
# Master data belongs to the whole organisation, not to one site (the subject's last token).
ENTERPRISE_SITE: Final = "ENTERPRISE"

Record = Provider | Location | Department | Service | Payer | CostCentre | CrossReference
ChangeEvent = (
    ProviderChanged
    | LocationChanged
    | DepartmentChanged
    | ServiceChanged
    | PayerChanged
    | CostCentreChanged
    | CrossReferenceChanged
)


class Dated(Protocol):
    @property
    def active(self) -> bool: ...
    @property
    def valid_from(self) -> Any: ...
    @property
    def valid_to(self) -> Any: ...


@dataclass(frozen=True)
class KindSpec:
    name: str  # "provider", ..., "cross_reference": KV key prefix, audit kind
    collection: str  # URL segment, e.g. "providers"
    model: type[Contract]
    event: Callable[..., Event]  # the change event class
    table: str
    key_fields: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()
    filters: tuple[str, ...] = ()  # equality filters on list
    # field -> kind it must name; checked on every write (referential integrity)
    references: tuple[tuple[str, EntityKind], ...] = ()

    @property
    def event_field(self) -> str:
        """The change event's field holding the record (same as the name)."""
        return self.name

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in msgspec.structs.fields(self.model))

    def record_id(self, record: Contract) -> str:
        return ":".join(str(getattr(record, name)) for name in self.key_fields)

    def key_values(self, record_id: str) -> tuple[str, ...]:
        """Split an id back into key field values (cross-references have three)."""
        parts = record_id.split(":", len(self.key_fields) - 1)
        if len(parts) != len(self.key_fields) or not all(parts):
            raise ValueError(f"a {self.name} id is {':'.join(self.key_fields)}")
        return tuple(parts)

    def kv_key(self, record_id: str) -> str:
        return kv_key(self.name, record_id)

    def change_event(
        self,
        record: Contract,
        change: ChangeKind,
        version: int,
        *,
        at: datetime,
        correlation_id: str,
    ) -> Event:
        record_id = self.record_id(record)
        event_id = stage_msg_id(SOURCE_SYSTEM, f"{self.name}\x1f{record_id}", version)
        return self.event(
            event_id=event_id,
            occurred_at=at,
            recorded_at=at,
            source_system=SOURCE_SYSTEM,
            site=ENTERPRISE_SITE,
            correlation_id=correlation_id,
            entity_key=f"{self.name}:{record_id}",
            entity_version=version,
            change=change,
            **{self.event_field: record},
        )


def kv_key(kind: str, record_id: str) -> str:
    """``<kind>.<id, base64url>``: ids may hold characters a KV key may not (``^``, spaces)."""
    encoded = base64.urlsafe_b64encode(record_id.encode()).decode().rstrip("=")
    return f"{kind}.{encoded}"


CROSS_REFERENCE: Final = "cross_reference"

SPECS: Final[tuple[KindSpec, ...]] = (
    KindSpec(
        "cost_centre",
        "cost-centres",
        CostCentre,
        CostCentreChanged,
        "cost_centre",
        ("cost_centre_id",),
    ),
    KindSpec(
        "location",
        "locations",
        Location,
        LocationChanged,
        "location",
        ("location_id",),
        json_columns=frozenset({"address"}),
        filters=("site_code", "place_of_service", "cost_centre_id", "time_zone"),
        references=(("cost_centre_id", EntityKind.COST_CENTRE),),
    ),
    KindSpec(
        "department",
        "departments",
        Department,
        DepartmentChanged,
        "department",
        ("department_id",),
        filters=("cost_centre_id", "location_id"),
        references=(
            ("cost_centre_id", EntityKind.COST_CENTRE),
            ("location_id", EntityKind.LOCATION),
        ),
    ),
    KindSpec(
        "provider",
        "providers",
        Provider,
        ProviderChanged,
        "provider",
        ("provider_id",),
        filters=("npi", "taxonomy_code", "department_id"),
        references=(("department_id", EntityKind.DEPARTMENT),),
    ),
    KindSpec(
        "service",
        "services",
        Service,
        ServiceChanged,
        "service",
        ("service_code",),
        filters=("code_system", "revenue_code"),
    ),
    KindSpec(
        "payer", "payers", Payer, PayerChanged, "payer", ("payer_id",), filters=("payer_class",)
    ),
    KindSpec(
        CROSS_REFERENCE,
        "cross-references",
        CrossReference,
        CrossReferenceChanged,
        "cross_reference",
        ("source_system", "kind", "source_code"),
        filters=("source_system", "kind", "source_code", "canonical_id"),
    ),
)
BY_NAME: Final[dict[str, KindSpec]] = {spec.name: spec for spec in SPECS}
BY_COLLECTION: Final[dict[str, KindSpec]] = {spec.collection: spec for spec in SPECS}
BY_MODEL: Final[dict[type[Contract], KindSpec]] = {spec.model: spec for spec in SPECS}
