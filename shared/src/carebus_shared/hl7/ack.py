"""Original-mode ACK/NAK builder that works even for badly broken input.

MSH of the ACK swaps sender and receiver, echoes processing id and version, and MSA-2
echoes the inbound MSH-10.  When the inbound message cannot be parsed, the header is
salvaged field by field from its first line; whatever is missing falls back to
defaults, so a NAK can always be built.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from carebus_shared.hl7.encoding import DEFAULT_ENCODING, EncodingCharacters, escape
from carebus_shared.hl7.errors import ERROR_CODE_TEXT, ErrorLocation, Hl7Error
from carebus_shared.hl7.message import _MSH18_CODECS, Hl7Message, decode_payload, parse_message
from carebus_shared.hl7.timestamps import format_dtm

ACK_ACCEPT: Final = "AA"
ACK_ERROR: Final = "AE"
ACK_REJECT: Final = "AR"
DEFAULT_APPLICATION: Final = "CAREBUS"
DEFAULT_VERSION: Final = "2.5.1"
_MSA_RE: Final = re.compile(rb"(?:^|[\r\n])MSA(.)([A-Z]{2})")
# Header fields the ACK echoes only when they are what they claim to be: anything else is
# text from the message and may be anything (issue 17: no message values in answers).
_TRIGGER_RE: Final = re.compile(r"[A-Z0-9]{3}")
_VERSION_RE: Final = re.compile(r"2\.[0-9](\.[0-9])?")


@dataclass(frozen=True, slots=True)
class InboundHeader:
    """The MSH fields an ACK needs, raw (still escaped with ``encoding``)."""

    encoding: EncodingCharacters = DEFAULT_ENCODING
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = DEFAULT_VERSION
    charset_field: str = ""
    codec: str = "utf-8"
    readable: bool = field(default=True)

    @classmethod
    def from_message(cls, message: Hl7Message) -> InboundHeader:
        msh = message.msh
        return cls(
            encoding=message.encoding,
            sending_application=msh.raw_field(3),
            sending_facility=msh.raw_field(4),
            receiving_application=msh.raw_field(5),
            receiving_facility=msh.raw_field(6),
            trigger_event=message.trigger_event or "",
            control_id=msh.raw_field(10).strip(),
            processing_id=msh.raw_field(11) or "P",
            version=msh.raw_field(12) or DEFAULT_VERSION,
            charset_field=msh.raw_field(18),
            codec=message.charset,
        )


def salvage_header(raw: bytes | str) -> InboundHeader:
    """Best-effort header of any input; ``readable`` is False when no MSH was found."""
    try:
        return InboundHeader.from_message(parse_message(raw))
    except Hl7Error:
        pass
    try:
        text, codec = decode_payload(raw)
    except Hl7Error:
        text, codec = (raw.decode("latin-1") if isinstance(raw, bytes) else raw), "latin-1"
    start = text.find("MSH")
    if start < 0:
        return InboundHeader(readable=False)
    line = re.split(r"[\r\n]", text[start:], maxsplit=1)[0]
    if len(line) < 8:  # as parse_message: MSH, MSH-1 and at least MSH-2
        return InboundHeader(readable=False)
    sep = line[3]
    fields = ["MSH", sep, *line.split(sep)[1:]]
    try:
        enc = EncodingCharacters.from_msh(sep, fields[2])
    except ValueError:
        return InboundHeader(readable=False)

    def get(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    message_type = _components(get(9), enc.component)
    event = message_type[1] if len(message_type) > 1 else ""
    return InboundHeader(
        encoding=enc,
        sending_application=get(3),
        sending_facility=get(4),
        receiving_application=get(5),
        receiving_facility=get(6),
        trigger_event=event,
        control_id=get(10).strip(),
        processing_id=get(11) or "P",
        version=_components(get(12), enc.component)[0] or DEFAULT_VERSION,
        codec=codec,
    )


def _components(value: str, separator: str) -> list[str]:
    """``value`` split into its components; a message whose MSH-2 is empty has none."""
    return value.split(separator) if separator else [value]


def build_ack(
    inbound: Hl7Message | InboundHeader | bytes | str | None,
    code: str = ACK_ACCEPT,
    *,
    error: Hl7Error | None = None,
    text: str | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """Build the ACK for ``inbound`` (segments joined by CR, no MLLP framing)."""
    if isinstance(inbound, Hl7Message):
        header = InboundHeader.from_message(inbound)
    elif isinstance(inbound, InboundHeader):
        header = inbound
    elif inbound is None:
        header = InboundHeader()
    else:
        header = salvage_header(inbound)
    enc = header.encoding
    f, c = enc.field, enc.component
    version = _components(header.version, c)[0]
    version = version if _VERSION_RE.fullmatch(version) else DEFAULT_VERSION
    trigger = header.trigger_event if _TRIGGER_RE.fullmatch(header.trigger_event) else ""
    message_type = f"ACK{c}{trigger}" if trigger else "ACK"
    if trigger and not version.startswith(("2.1", "2.2", "2.3")):
        message_type += f"{c}ACK"
    msh = [
        "MSH",
        enc.msh2,
        header.receiving_application or DEFAULT_APPLICATION,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        format_dtm(now or datetime.now(UTC)),
        "",
        message_type,
        control_id or _new_control_id(),
        header.processing_id,
        version,
    ]
    if header.charset_field and _known_charset(header.charset_field, enc.repetition):
        msh += ["", "", "", "", "", header.charset_field]
    msa_text = text if text is not None else (error.message if error else "")
    segments = [
        f.join(msh),
        f.join(["MSA", code, header.control_id, escape(msa_text[:80], enc)]),
    ]
    if error is not None:
        segments.append(_err_segment(error, enc, version))
    return "\r".join(segments).encode(header.codec, errors="replace")


def _new_control_id() -> str:
    """20 hex digits for the ACK's MSH-10: unique, not secret, so no urandom call per ACK."""
    return f"{random.getrandbits(80):020x}"


def _err_segment(error: Hl7Error, enc: EncodingCharacters, version: str) -> str:
    c, s = enc.component, enc.subcomponent or enc.component
    code_text = ERROR_CODE_TEXT.get(error.code, "Error")
    location = error.location or ErrorLocation("MSH")
    erl = c.join(
        [
            location.segment,
            str(location.sequence),
            str(location.field) if location.field is not None else "",
            "1" if location.field is not None else "",
            str(location.component) if location.component is not None else "",
            str(location.subcomponent) if location.subcomponent is not None else "",
        ]
    ).rstrip(c)
    readable = escape(error.message, enc)
    hl7_code = c.join([error.code, code_text, "HL70357"])
    # ERR-1 (ELD) is what v2.1-2.4 receivers read; ERR-2..8 is the v2.5+ layout.
    eld = ""
    if version < "2.5":
        eld = c.join(
            [
                location.segment,
                str(location.sequence),
                str(location.field or ""),
                s.join([error.code, code_text, "HL70357"]),
            ]
        )
    return enc.field.join(["ERR", eld, erl, hl7_code, "E", "", "", "", readable])


def ack_code_of(ack: bytes) -> str | None:
    """MSA-1 of an encoded ACK, for metrics; ``None`` if there is no MSA."""
    match = _MSA_RE.search(ack)
    return match.group(2).decode("ascii") if match else None


def _known_charset(field: str, repetition: str) -> bool:
    return field.split(repetition)[0].strip().upper() in _MSH18_CODECS
