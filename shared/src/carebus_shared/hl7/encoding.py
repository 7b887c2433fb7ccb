"""HL7 v2 delimiters (MSH-1/MSH-2) and escape sequences.

Delimiters are read from each message, never assumed: feeds with custom encoding
characters exist.  Values are split on delimiters first and unescaped last, so an
escaped ``\\F\\`` never splits a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Formatting escapes of FT fields: keep line breaks, drop layout hints.
_FORMATTING: Final[dict[str, str]] = {".br": "\n", ".sp": "\n"}
_FORMATTING_DROPPED: Final = (".in", ".ti", ".sk", ".ce", ".fi", ".nf")


@dataclass(frozen=True, slots=True)
class EncodingCharacters:
    """The five (v2.7+: six) delimiters of one message."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def msh2(self) -> str:
        """The MSH-2 value these characters serialise to."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    @classmethod
    def from_msh(cls, field_separator: str, msh2: str) -> EncodingCharacters:
        """Build from MSH-1 and MSH-2; tolerates the common ``^~\\\\&`` (doubled escape) bug."""
        if len(msh2) == 5 and msh2[2] == msh2[3] == "\\":
            msh2 = msh2[:3] + msh2[4:]
        chars = list(msh2[:5]) + [""] * (5 - min(len(msh2), 5))
        enc = cls(field_separator, chars[0], chars[1], chars[2], chars[3], chars[4])
        used = [c for c in (field_separator, *chars) if c]
        if len(set(used)) != len(used) or any(c.isalnum() or c in "\r\n" for c in used):
            raise ValueError("invalid encoding characters (MSH-1/MSH-2: four distinct delimiters)")
        return enc


DEFAULT_ENCODING: Final = EncodingCharacters()


def unescape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING, charset: str = "utf-8") -> str:
    """Resolve HL7 escape sequences in one leaf value.

    ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\P\\`` become delimiters, ``\\Xhh..\\`` becomes the bytes
    decoded with the message charset, ``\\.br\\`` a newline; highlighting and
    character-set switches are dropped.  Anything unknown or unterminated stays literal,
    because silently losing text is worse than showing a stray backslash.
    """
    esc = enc.escape
    if not esc or esc not in text:
        return text
    simple = {
        "F": enc.field,
        "S": enc.component,
        "T": enc.subcomponent,
        "R": enc.repetition,
        "E": esc,
        "P": enc.truncation,
    }
    out: list[str] = []
    pos = 0
    while True:
        start = text.find(esc, pos)
        if start < 0:
            out.append(text[pos:])
            break
        end = text.find(esc, start + 1)
        if end < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        seq = text[start + 1 : end]
        replacement = _resolve(seq, simple, charset)
        out.append(esc + seq + esc if replacement is None else replacement)
        pos = end + 1
    return "".join(out)


def _resolve(seq: str, simple: dict[str, str], charset: str) -> str | None:
    if simple.get(seq):
        return simple[seq]
    if seq in _FORMATTING:
        return _FORMATTING[seq]
    if seq in ("H", "N") or seq.startswith(_FORMATTING_DROPPED):
        return ""
    head, body = seq[:1], seq[1:]
    if head == "X" and body and len(body) % 2 == 0:
        try:
            return bytes.fromhex(body).decode(charset, errors="replace")
        except ValueError:
            return None
    if head in ("C", "M") and body and all(c in "0123456789ABCDEFabcdef" for c in body):
        return ""
    return None


def escape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """Escape delimiters so ``text`` can be written as one HL7 leaf value."""
    if not enc.escape or not text:  # every AA carries an empty MSA-3
        return text
    esc = enc.escape
    text = text.replace("\r\n", "\n")
    mapping = {esc: f"{esc}E{esc}", enc.field: f"{esc}F{esc}"}
    for char, code in (
        (enc.component, "S"),
        (enc.subcomponent, "T"),
        (enc.repetition, "R"),
        (enc.truncation, "P"),
    ):
        if char:
            mapping[char] = f"{esc}{code}{esc}"
    # Segment separators inside a value would split the segment: make them visible.
    mapping["\r"] = f"{esc}.br{esc}"
    mapping["\n"] = f"{esc}.br{esc}"
    return "".join(mapping.get(c, c) for c in text)
