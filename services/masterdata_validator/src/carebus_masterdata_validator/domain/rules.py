"""Rules a master-data record must meet before it is written (pure; references aside)."""

from __future__ import annotations

import zoneinfo

from carebus_contracts.checks import unstorable_text_path
from carebus_contracts.envelope import Contract
from carebus_contracts.masterdata import CrossReference, Location, Provider
from carebus_masterdata_validator.domain.kinds import KindSpec
from carebus_masterdata_validator.domain.npi import npi_check_digit_ok
from carebus_masterdata_validator.domain.problems import FieldError

UNSTORABLE = "must not contain a NUL character or a lone surrogate"


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check(spec: KindSpec, record: Contract) -> list[FieldError]:
    errors: list[FieldError] = []
    if (path := unstorable_text_path(record)) is not None:
        errors.append(FieldError(path.removeprefix("$."), UNSTORABLE))
    for name in spec.key_fields:
        value = str(getattr(record, name))
        if not value.strip() or value != value.strip():
            errors.append(FieldError(name, "must be non-empty, without surrounding spaces"))
    valid_from = getattr(record, "valid_from", None)
    valid_to = getattr(record, "valid_to", None)
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        errors.append(FieldError("valid_to", f"is before valid_from ({valid_from.isoformat()})"))
    match record:
        case Provider() if not npi_check_digit_ok(record.npi):
            errors.append(FieldError("npi", "fails the NPI check digit (Luhn, prefix 80840)"))
        case Location() if not _known_zone(record.time_zone):
            errors.append(FieldError("time_zone", "is not an IANA zone"))
        case CrossReference() if ":" in record.source_system:
            errors.append(FieldError("source_system", "may not contain ':'"))
    return errors
