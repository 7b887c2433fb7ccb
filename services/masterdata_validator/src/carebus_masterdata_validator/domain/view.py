"""The in-memory view of master data the validator looks references up in (no I/O).

It is fed, in order, with the latest change event of every record (from the KV bucket), and
answers each change with the *wait keys* it touches: the keys parked events name when they
wait for master data (see :mod:`carebus_masterdata_validator.domain.validation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Final

import msgspec

from carebus_contracts.masterdata import (
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
from carebus_masterdata_validator.domain.kinds import ChangeEvent, Dated, Record

_decode_change: Final = msgspec.json.Decoder(ChangeEvent).decode


def decode_change(data: bytes) -> ChangeEvent:
    """A KV value or MASTERDATA message: the latest change event of one record."""
    event: ChangeEvent = _decode_change(data)
    return event


def record_of(event: ChangeEvent) -> Record:
    match event:
        case ProviderChanged():
            return event.provider
        case LocationChanged():
            return event.location
        case DepartmentChanged():
            return event.department
        case ServiceChanged():
            return event.service
        case PayerChanged():
            return event.payer
        case CostCentreChanged():
            return event.cost_centre
        case CrossReferenceChanged():
            return event.cross_reference


def in_effect(record: Dated, on: date) -> bool:
    """Active, and ``on`` within valid_from .. valid_to (both inclusive, None = open)."""
    return (
        record.active
        and (record.valid_from is None or record.valid_from <= on)
        and (record.valid_to is None or on <= record.valid_to)
    )


# -- wait keys: what a parked event waits for, and what a change touches ----------------------
def entity_key(kind: EntityKind, canonical_id: str) -> str:
    return f"{kind.value}:{canonical_id}"


def npi_key(npi: str) -> str:
    return f"provider_npi:{npi}"


def xref_key(source_system: str, kind: EntityKind, source_code: str) -> str:
    return f"xref:{source_system}:{kind.value}:{source_code}"


def touched_keys(record: Record) -> set[str]:
    match record:
        case Provider():
            return {entity_key(EntityKind.PROVIDER, record.provider_id), npi_key(record.npi)}
        case Location():
            return {entity_key(EntityKind.LOCATION, record.location_id)}
        case Department():
            return {entity_key(EntityKind.DEPARTMENT, record.department_id)}
        case Service():
            return {entity_key(EntityKind.SERVICE, record.service_code)}
        case Payer():
            return {entity_key(EntityKind.PAYER, record.payer_id)}
        case CostCentre():
            return {entity_key(EntityKind.COST_CENTRE, record.cost_centre_id)}
        case CrossReference():
            return {xref_key(record.source_system, record.kind, record.source_code)}


class MasterDataView:
    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.provider_by_npi: dict[str, str] = {}
        self.locations: dict[str, Location] = {}
        self.departments: dict[str, Department] = {}
        self.services: dict[str, Service] = {}
        self.payers: dict[str, Payer] = {}
        self.cost_centres: dict[str, CostCentre] = {}
        self.xrefs: dict[tuple[str, EntityKind, str], CrossReference] = {}
        self._by_key: dict[str, tuple[int, Record]] = {}
        # get() runs for every reference of every event: one dict lookup picks the table.
        self._tables: dict[EntityKind, Mapping[str, Record]] = {
            EntityKind.PROVIDER: self.providers,
            EntityKind.LOCATION: self.locations,
            EntityKind.DEPARTMENT: self.departments,
            EntityKind.SERVICE: self.services,
            EntityKind.PAYER: self.payers,
            EntityKind.COST_CENTRE: self.cost_centres,
        }

    def __len__(self) -> int:
        return len(self._by_key)

    def apply(self, key: str, event: ChangeEvent) -> set[str]:
        """Take the record of ``event`` as the current state under ``key``; older is ignored."""
        held = self._by_key.get(key)
        if held is not None and held[0] > event.entity_version:
            return set()
        record = record_of(event)
        touched = set()
        if held is not None:
            touched |= self._drop(held[1])
        self._put(record)
        self._by_key[key] = (event.entity_version, record)
        return touched | touched_keys(record)

    def remove(self, key: str) -> set[str]:
        held = self._by_key.pop(key, None)
        return self._drop(held[1]) if held is not None else set()

    def _put(self, record: Record) -> None:
        match record:
            case Provider():
                self.providers[record.provider_id] = record
                self.provider_by_npi[record.npi] = record.provider_id
            case Location():
                self.locations[record.location_id] = record
            case Department():
                self.departments[record.department_id] = record
            case Service():
                self.services[record.service_code] = record
            case Payer():
                self.payers[record.payer_id] = record
            case CostCentre():
                self.cost_centres[record.cost_centre_id] = record
            case CrossReference():
                self.xrefs[(record.source_system, record.kind, record.source_code)] = record

    def _drop(self, record: Record) -> set[str]:
        match record:
            case Provider():
                self.providers.pop(record.provider_id, None)
                if self.provider_by_npi.get(record.npi) == record.provider_id:
                    del self.provider_by_npi[record.npi]
            case Location():
                self.locations.pop(record.location_id, None)
            case Department():
                self.departments.pop(record.department_id, None)
            case Service():
                self.services.pop(record.service_code, None)
            case Payer():
                self.payers.pop(record.payer_id, None)
            case CostCentre():
                self.cost_centres.pop(record.cost_centre_id, None)
            case CrossReference():
                self.xrefs.pop((record.source_system, record.kind, record.source_code), None)
        return touched_keys(record)

    def get(self, kind: EntityKind, canonical_id: str) -> Record | None:
        return self._tables[kind].get(canonical_id)
