"""A small, strict-where-it-matters HL7 v2 (ER7 "pipe") parser.

Hand-rolled rather than python-hl7 or hl7apy: mapping needs little, the libraries were far
slower on our samples and lose exact error locations (docs/decisions/001).

Positions follow HL7 numbering: ``segment.value(11, 4)`` is SCH-11.4, and for MSH
``value(10)`` is MSH-10 (MSH-1 is the field separator itself).  Empty values and the
explicit null ``""`` both read as ``None``; ``is_null`` tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Final

from carebus_shared.hl7.encoding import EncodingCharacters, unescape
from carebus_shared.hl7.errors import Hl7ParseError

HL7_NULL: Final = '""'
_BOM: Final = b"\xef\xbb\xbf"
_SEGMENT_SPLIT: Final = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME: Final = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_LINE_END: Final = re.compile(rb"[\r\n]")
_MSH18_CODECS: Final[dict[str, str]] = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "CP1252": "cp1252",
}


class Field:
    """One repetition of one field: components and subcomponents on demand."""

    __slots__ = ("_charset", "_components", "_enc", "raw")

    def __init__(self, raw: str, enc: EncodingCharacters, charset: str) -> None:
        self.raw = raw
        self._enc = enc
        self._charset = charset
        self._components: list[str] | None = None

    @property
    def is_null(self) -> bool:
        return self.raw == HL7_NULL

    def component(self, component: int = 1, sub: int | None = 1) -> str | None:
        """Unescaped value of component/subcomponent (1-based); ``None`` if empty or null.

        ``sub=None`` returns the whole component, subcomponent separators included (for
        free-text fields where senders forget to escape ``&``).
        """
        components = self._components
        if components is None:
            sep = self._enc.component
            components = self._components = self.raw.split(sep) if sep else [self.raw]
        if component > len(components):
            return None
        text = components[component - 1]
        if sub is not None:
            subsep = self._enc.subcomponent
            if subsep and subsep in text:
                parts = text.split(subsep)
                text = parts[sub - 1] if sub <= len(parts) else ""
            elif sub > 1:
                text = ""
        if not text or text == HL7_NULL:
            return None
        escape = self._enc.escape
        return unescape(text, self._enc, self._charset) if escape and escape in text else text

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


class Segment:
    """One segment; ``index`` is its 1-based position among segments of the same name."""

    __slots__ = ("_charset", "_enc", "_fields", "_repetitions", "index", "name", "raw")

    def __init__(
        self, raw: str, fields: list[str], enc: EncodingCharacters, charset: str, index: int
    ) -> None:
        self.raw = raw
        self.name = fields[0]
        self._fields = fields
        self._enc = enc
        self._charset = charset
        self.index = index
        # Mappers read the same fields many times (SCH-11 for start, end and duration):
        # each field is split into its repetitions once, and each Field keeps its components.
        self._repetitions: dict[int, tuple[Field, ...]] = {}

    def raw_field(self, n: int) -> str:
        """Escaped text of field ``n`` with all repetitions; ``""`` if absent."""
        return self._fields[n] if 0 < n < len(self._fields) else ""

    def repetitions(self, n: int) -> tuple[Field, ...]:
        """Non-empty repetitions of field ``n`` (MSH-1/MSH-2 are never split)."""
        cached = self._repetitions.get(n)
        if cached is None:
            cached = self._repetitions[n] = self._split_repetitions(n)
        return cached

    def _split_repetitions(self, n: int) -> tuple[Field, ...]:
        raw = self.raw_field(n)
        if not raw:
            return ()
        rep = self._enc.repetition
        if not rep or rep not in raw or (self.name == "MSH" and n <= 2):
            return (Field(raw, self._enc, self._charset),)
        return tuple(Field(part, self._enc, self._charset) for part in raw.split(rep) if part)

    def field(self, n: int, rep: int = 1) -> Field | None:
        reps = self.repetitions(n)
        return reps[rep - 1] if rep <= len(reps) else None

    def value(self, n: int, component: int = 1, sub: int | None = 1, rep: int = 1) -> str | None:
        """Unescaped leaf value at ``n.component.sub`` of repetition ``rep``, or ``None``."""
        if n <= 2 and self.name == "MSH":
            return self.raw_field(n) or None
        reps = self.repetitions(n)
        return reps[rep - 1].component(component, sub) if rep <= len(reps) else None

    def is_null(self, n: int) -> bool:
        return self.raw_field(n) == HL7_NULL

    @property
    def field_count(self) -> int:
        return len(self._fields) - 1

    def __repr__(self) -> str:
        return f"Segment({self.name}[{self.index}])"


class Hl7Message:
    """A parsed message: segments in order, plus header shortcuts."""

    __slots__ = ("_by_name", "charset", "encoding", "segments", "text")

    def __init__(
        self, segments: list[Segment], encoding: EncodingCharacters, charset: str, text: str
    ) -> None:
        self.segments = tuple(segments)
        self.encoding = encoding
        self.charset = charset
        self.text = text
        # Segments by name, in message order: mappers look most names up several times.
        self._by_name: dict[str, list[Segment]] = {}
        for segment in self.segments:
            self._by_name.setdefault(segment.name, []).append(segment)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def segment(self, name: str) -> Segment | None:
        found = self._by_name.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        return list(self._by_name.get(name, ()))

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def message_code(self) -> str | None:
        return self.msh.value(9, 1)

    @property
    def trigger_event(self) -> str | None:
        return self.msh.value(9, 2)

    @property
    def control_id(self) -> str | None:
        # A leading/trailing space in MSH-10 is a common sender bug, never significant.
        value = self.msh.value(10)
        return value.strip() or None if value else None

    @property
    def version(self) -> str | None:
        return self.msh.value(12, 1)


def decode_payload(raw: bytes | str) -> tuple[str, str]:
    """Bytes → text using MSH-18; returns ``(text, codec)``.  Strips a UTF-8 BOM."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff"), "utf-8"
    raw = raw.removeprefix(_BOM)
    declared = _declared_charset(raw)
    codec = _MSH18_CODECS.get(declared.upper())
    if codec is None:
        raise Hl7ParseError("unsupported character set (MSH-18)", "MSH-18")
    try:
        return raw.decode(codec), codec
    except UnicodeDecodeError as exc:
        if declared:
            raise Hl7ParseError(
                "message is not valid in its declared character set (MSH-18)", "MSH-18"
            ) from exc
        # Undeclared and not UTF-8: legacy feeds are Windows-1252 far more often than not.
        return raw.decode("cp1252", errors="replace"), "cp1252"


def _declared_charset(raw: bytes) -> str:
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 4:
        return ""
    header = _LINE_END.split(raw[start:], maxsplit=1)[0]
    fields = header.split(raw[start + 3 : start + 4])
    # fields[0]="MSH", fields[1]=MSH-2 ... so MSH-18 is fields[17]; first repetition wins.
    if len(fields) <= 17:
        return ""
    return fields[17].split(b"~")[0].decode("ascii", errors="replace").strip()


@lru_cache(maxsize=32)
def _encoding_characters(field_separator: str, msh2: str) -> EncodingCharacters:
    """Validated delimiters; a feed sends the same MSH-1/MSH-2 every time, so check it once."""
    return EncodingCharacters.from_msh(field_separator, msh2)


def parse_message(raw: bytes | str) -> Hl7Message:
    """Parse one ER7 message; raises :class:`Hl7ParseError` naming the broken place."""
    text, charset = decode_payload(raw)
    lines = [line.lstrip(" \t") for line in _SEGMENT_SPLIT.split(text.strip("\x0b\x1c\r\n \t"))]
    lines = [line for line in lines if line]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7ParseError("message does not start with an MSH segment", "MSH")
    field_sep = lines[0][3]
    msh_fields = lines[0].split(field_sep)
    try:
        enc = _encoding_characters(field_sep, msh_fields[1])
    except ValueError as exc:
        raise Hl7ParseError(str(exc), "MSH-2") from exc

    counts: dict[str, int] = {}
    segments: list[Segment] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split(field_sep)
        name = fields[0]
        if not _SEGMENT_NAME.match(name):
            raise Hl7ParseError(
                f"segment {number} has an invalid name (three letters or digits)", None
            )
        if name == "MSH":
            if number > 1:
                raise Hl7ParseError("batches are not supported: more than one MSH", "MSH")
            fields = ["MSH", field_sep, *fields[1:]]
        counts[name] = counts.get(name, 0) + 1
        segments.append(Segment(line, fields, enc, charset, counts[name]))
    return Hl7Message(segments, enc, charset, "\r".join(lines))
