"""HL7 v2 building blocks shared by the scheduling (SIU) and billing (DFT) adapters."""

from carebus_shared.hl7.ack import (
    ACK_ACCEPT,
    ACK_ERROR,
    ACK_REJECT,
    InboundHeader,
    ack_code_of,
    build_ack,
    salvage_header,
)
from carebus_shared.hl7.encoding import DEFAULT_ENCODING, EncodingCharacters, escape, unescape
from carebus_shared.hl7.errors import ErrorLocation, Hl7Error, Hl7MappingError, Hl7ParseError
from carebus_shared.hl7.message import HL7_NULL, Field, Hl7Message, Segment, parse_message
from carebus_shared.hl7.timestamps import InvalidTimestamp, format_dtm, parse_dtm

__all__ = [
    "ACK_ACCEPT",
    "ACK_ERROR",
    "ACK_REJECT",
    "DEFAULT_ENCODING",
    "HL7_NULL",
    "EncodingCharacters",
    "ErrorLocation",
    "Field",
    "Hl7Error",
    "Hl7MappingError",
    "Hl7Message",
    "Hl7ParseError",
    "InboundHeader",
    "InvalidTimestamp",
    "Segment",
    "ack_code_of",
    "build_ack",
    "escape",
    "format_dtm",
    "parse_dtm",
    "parse_message",
    "salvage_header",
    "unescape",
]
