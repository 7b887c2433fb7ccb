"""Typed HL7 errors that know where they happened and how to be acknowledged.

Codes are HL7 table 0357 (message error condition codes).  ``reason`` is a stable
snake_case slug for logs, metrics-free dashboards and test expectations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# HL7 table 0357 codes used by carebus.
SEGMENT_SEQUENCE_ERROR: Final = "100"
REQUIRED_FIELD_MISSING: Final = "101"
DATA_TYPE_ERROR: Final = "102"
TABLE_VALUE_NOT_FOUND: Final = "103"
VALUE_TOO_LONG: Final = "104"
UNSUPPORTED_MESSAGE_TYPE: Final = "200"
UNSUPPORTED_EVENT_CODE: Final = "201"
UNSUPPORTED_PROCESSING_ID: Final = "202"
UNSUPPORTED_VERSION_ID: Final = "203"
APPLICATION_INTERNAL_ERROR: Final = "207"

ERROR_CODE_TEXT: Final[dict[str, str]] = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

_DEFAULT_REASON: Final[dict[str, str]] = {
    SEGMENT_SEQUENCE_ERROR: "segment_sequence_error",
    REQUIRED_FIELD_MISSING: "required_field_missing",
    DATA_TYPE_ERROR: "data_type_error",
    TABLE_VALUE_NOT_FOUND: "table_value_not_found",
    VALUE_TOO_LONG: "value_too_long",
    UNSUPPORTED_MESSAGE_TYPE: "unsupported_message_type",
    UNSUPPORTED_EVENT_CODE: "unsupported_trigger_event",
    UNSUPPORTED_PROCESSING_ID: "unsupported_processing_id",
    UNSUPPORTED_VERSION_ID: "unsupported_version",
    APPLICATION_INTERNAL_ERROR: "internal_error",
}

# Codes for which HL7 (original mode) prescribes AR: the MSH itself is not acceptable.
_REJECT_CODES: Final = frozenset(
    {
        UNSUPPORTED_MESSAGE_TYPE,
        UNSUPPORTED_EVENT_CODE,
        UNSUPPORTED_PROCESSING_ID,
        UNSUPPORTED_VERSION_ID,
    }
)

_LOCATION_RE: Final = re.compile(
    r"^(?P<segment>[A-Z][A-Z0-9]{2})(?:\[(?P<seq>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\.(?P<component>\d+)(?:\.(?P<sub>\d+))?)?)?$"
)


@dataclass(frozen=True, slots=True)
class ErrorLocation:
    """Where an error is: ``SCH-11.4`` or, for the 2nd FT1, ``FT1[2]-11``."""

    segment: str
    field: int | None = None
    sequence: int = 1
    component: int | None = None
    subcomponent: int | None = None

    @classmethod
    def parse(cls, text: str) -> ErrorLocation:
        match = _LOCATION_RE.match(text)
        if match is None:
            raise ValueError(f"not an HL7 location: {text!r}")

        def opt(name: str) -> int | None:
            value = match.group(name)
            return int(value) if value else None

        return cls(
            segment=match["segment"],
            field=opt("field"),
            sequence=opt("seq") or 1,
            component=opt("component"),
            subcomponent=opt("sub"),
        )

    def __str__(self) -> str:
        text = self.segment + (f"[{self.sequence}]" if self.sequence != 1 else "")
        if self.field is not None:
            text += f"-{self.field}"
            if self.component is not None:
                text += f".{self.component}"
                if self.subcomponent is not None:
                    text += f".{self.subcomponent}"
        return text


class Hl7Error(Exception):
    """Base: a message that carebus will not accept, with its ACK semantics."""

    def __init__(
        self,
        code: str,
        location: ErrorLocation | str | None,
        message: str,
        *,
        reason: str | None = None,
        value: str | None = None,
    ) -> None:
        self.code = code
        # The offending value: kept in the exception store only, never in the text.
        self.value = value
        self.location = ErrorLocation.parse(location) if isinstance(location, str) else location
        self.message = message
        self.reason = reason or _DEFAULT_REASON.get(code, "invalid_message")
        prefix = f"{self.location}: " if self.location else ""
        super().__init__(prefix + message)

    @property
    def ack_code(self) -> str:
        """AR when the header is unacceptable (HL7 2.9.2 original mode), AE otherwise."""
        return "AR" if self.code in _REJECT_CODES else "AE"


class Hl7ParseError(Hl7Error):
    """The bytes are not a readable HL7 v2 message; always acknowledged with AR."""

    def __init__(self, message: str, location: ErrorLocation | str | None = "MSH") -> None:
        super().__init__(DATA_TYPE_ERROR, location, message, reason="parse_error")

    @property
    def ack_code(self) -> str:
        return "AR"


class Hl7MappingError(Hl7Error):
    """A readable message that cannot be mapped to a carebus event.

    ``Hl7MappingError("101", "SCH-11", "no slot start")`` renders as
    ``SCH-11: no slot start``.
    """
