"""Readers for the composite HL7 data types both adapters map (CWE, XCN, CX, PL, DTM).

They turn fields into small frozen structs and raise :class:`Hl7MappingError` with the
exact location when a value is unusable, so adapters stay declarative.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Final

import msgspec

from carebus_shared.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_VERSION_ID,
    ErrorLocation,
    Hl7MappingError,
)
from carebus_shared.hl7.message import Field, Hl7Message, Segment
from carebus_shared.hl7.timestamps import InvalidTimestamp, parse_dtm

NPI_OID: Final = "2.16.840.1.113883.4.6"
_SUPPORTED_VERSION: Final = re.compile(r"^2\.[3-8](\.\d+)?$")


class CodedValue(msgspec.Struct, frozen=True, kw_only=True):
    """CE/CWE/CNE: code, display text and coding system (any may be absent but not all)."""

    code: str | None
    text: str | None = None
    system: str | None = None


class ProviderRef(msgspec.Struct, frozen=True, kw_only=True):
    """A person resource (XCN or a person-like AIG) and where it came from."""

    role: str
    id: str
    id_type: str | None = None
    assigning_authority: str | None = None
    npi: str | None = None
    name: str | None = None
    source: str


class PatientRef(msgspec.Struct, frozen=True, kw_only=True):
    """Patient identifier only: events carry no demographics."""

    id: str
    assigning_authority: str | None = None
    id_type: str | None = None
    source: str


class LocationRef(msgspec.Struct, frozen=True, kw_only=True):
    """PL: point of care^room^bed^facility^status^type^building^floor."""

    point_of_care: str | None = None
    room: str | None = None
    bed: str | None = None
    facility: str | None = None
    building: str | None = None
    floor: str | None = None
    source: str


def loc(segment: Segment, field: int, component: int | None = None) -> ErrorLocation:
    """Location of ``segment``-``field`` for error messages."""
    return ErrorLocation(segment.name, field, segment.index, component)


def coded(fld: Field | None) -> CodedValue | None:
    if fld is None:
        return None
    code, text, system = fld.component(1), fld.component(2, None), fld.component(3)
    if code is None and text is None:
        return None
    return CodedValue(code=code, text=text, system=system)


def coded_at(segment: Segment | None, n: int) -> CodedValue | None:
    return coded(segment.field(n)) if segment is not None else None


def is_npi(fld: Field) -> bool:
    """XCN carrying an NPI: type code (XCN-13) or assigning authority (XCN-9) says so."""
    markers = {fld.component(13), fld.component(9, 1), fld.component(9, 2)}
    return bool(markers & {"NPI", NPI_OID})


def provider_from_xcn(fld: Field, role: str, source: ErrorLocation) -> ProviderRef | None:
    ident = fld.component(1)
    if ident is None:
        return None
    family, given = fld.component(2, 1), fld.component(3)
    name = " ".join(p for p in (given, family) if p) or None
    authority = fld.component(9, 1) or fld.component(9, 2)
    return ProviderRef(
        role=role,
        id=ident,
        id_type=fld.component(13),
        assigning_authority=authority,
        npi=ident if is_npi(fld) else None,
        name=name,
        source=str(source),
    )


def providers_at(segment: Segment | None, n: int, role: str) -> list[ProviderRef]:
    if segment is None:
        return []
    found = (provider_from_xcn(f, role, loc(segment, n)) for f in segment.repetitions(n))
    return [p for p in found if p is not None]


def patient_from_pid(message: Hl7Message) -> PatientRef:
    """PID-3: the first identifier that has an assigning authority, else the first one."""
    pid = message.segment("PID")
    if pid is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "PID", "no PID segment")
    candidates = [f for f in pid.repetitions(3) if f.component(1)]
    if not candidates:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, loc(pid, 3), "no patient identifier")
    chosen = next((f for f in candidates if f.component(4, 1) or f.component(4, 2)), None)
    chosen = chosen or candidates[0]
    return PatientRef(
        id=chosen.component(1) or "",
        assigning_authority=chosen.component(4, 1) or chosen.component(4, 2),
        id_type=chosen.component(5),
        source=str(loc(pid, 3)),
    )


def location_from_pl(fld: Field | None, source: ErrorLocation) -> LocationRef | None:
    if fld is None:
        return None
    parts = {
        "point_of_care": fld.component(1),
        "room": fld.component(2),
        "bed": fld.component(3),
        "facility": fld.component(4),
        "building": fld.component(7),
        "floor": fld.component(8),
    }
    if not any(parts.values()):
        return None
    return LocationRef(**parts, source=str(source))


def timestamp_at(
    segment: Segment | None, n: int, default_tz: tzinfo | str, component: int = 1
) -> datetime | None:
    """DTM at ``n.component`` (TS/DR: the first component is the time)."""
    if segment is None:
        return None
    text = segment.value(n, component)
    if text is None:
        return None
    try:
        return parse_dtm(text, default_tz)
    except InvalidTimestamp as exc:
        where = loc(segment, n, component if component > 1 else None)
        raise Hl7MappingError(DATA_TYPE_ERROR, where, str(exc), value=text) from exc


class MessageMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Header facts every canonical event carries."""

    control_id: str
    message_datetime: datetime
    message_type: str
    trigger_event: str
    version: str
    source_system: str
    site: str | None


def message_meta(message: Hl7Message, default_tz: tzinfo | str) -> MessageMeta:
    """MSH-3/4/7/9/10/12; rejects versions outside 2.3-2.8 with code 203."""
    msh = message.msh
    version = message.version or ""
    if not _SUPPORTED_VERSION.match(version):
        raise Hl7MappingError(
            UNSUPPORTED_VERSION_ID, "MSH-12", "HL7 version is not 2.3-2.8", value=version
        )
    control_id = message.control_id
    if control_id is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "MSH-10", "no message control id")
    source_system = msh.value(3)
    if source_system is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "MSH-3", "no sending application")
    sent_at = timestamp_at(msh, 7, default_tz)
    if sent_at is None:
        raise Hl7MappingError(REQUIRED_FIELD_MISSING, "MSH-7", "no message date/time")
    return MessageMeta(
        control_id=control_id,
        message_datetime=sent_at,
        message_type=f"{message.message_code or ''}^{message.trigger_event or ''}",
        trigger_event=message.trigger_event or "",
        version=version,
        source_system=source_system,
        site=msh.value(4),
    )
