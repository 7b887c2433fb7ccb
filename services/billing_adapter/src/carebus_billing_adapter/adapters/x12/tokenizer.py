"""Split X12 text into segments using the delimiters the file itself declares.

With an ISA the delimiters come from its fixed layout: element separator at byte 4, component
separator ISA16 at byte 105, segment terminator right after it, repetition separator ISA11 from
version 00501 on. Without an envelope (the file starts at GS or ST) the element separator is the
character after the tag, the terminator is the first character that cannot belong to the header
segment, and the component separator is read off the first SVC composite (default ``:``).
Line breaks after terminators are tolerated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.segments import DEFAULT_DELIMITERS, Delimiters, Segment
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

ISA_LENGTH = 106  # including the segment terminator
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_NEWLINES = "\r\n"


@dataclass(frozen=True, slots=True)
class Tokenized:
    delimiters: Delimiters
    segments: list[Segment]


def tokenize(text: str, issues: IssueLog) -> Tokenized | None:
    """Segments of ``text``; None (with an issue logged) when it is not X12 at all."""
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("ISA"):
        delimiters = _isa_delimiters(text, issues)
    elif text[:2] in ("GS", "ST") and len(text) > 2 and _can_delimit(text[2]):
        delimiters = _detected_delimiters(text)
    else:
        issues.add(
            RejectionReason.NOT_X12, None, "file does not start with an ISA, GS or ST segment"
        )
        return None
    if delimiters is None:
        return None
    return Tokenized(delimiters, list(_segments(text, delimiters, issues)))


def _can_delimit(char: str) -> bool:
    return not char.isalnum() and char != " "


def _isa_delimiters(text: str, issues: IssueLog) -> Delimiters | None:
    isa = Segment("ISA", (), 1)
    element = text[3:4]
    if not element or not _can_delimit(element):
        issues.add(RejectionReason.MALFORMED_INTERCHANGE, isa, "no element separator after ISA")
        return None
    fields = text[:ISA_LENGTH].split(element)[1:]
    for number, (field, width) in enumerate(zip(fields, _ISA_WIDTHS, strict=False), start=1):
        # ISA16 is followed by the segment terminator, hence one extra character.
        actual = len(field) - 1 if number == 16 else len(field)
        if actual != width:
            issues.add(
                RejectionReason.MALFORMED_INTERCHANGE,
                isa,
                f"ISA is fixed width: element is {actual} characters long, expected {width}",
                element=f"ISA{number:02d}",
            )
            return None
    if len(fields) < 16 or len(text) < ISA_LENGTH:
        issues.add(RejectionReason.MALFORMED_INTERCHANGE, isa, "interchange header is truncated")
        return None
    version, repetition = text[84:89], text[82]
    delimiters = Delimiters(
        element=element,
        component=text[104],
        segment=text[105],
        # Before 00501 ISA11 is the standards identifier 'U', not a separator.
        repetition=repetition if version >= "00501" and _can_delimit(repetition) else None,
    )
    chosen = [delimiters.element, delimiters.component, delimiters.segment]
    if delimiters.repetition:
        chosen.append(delimiters.repetition)
    if len(set(chosen)) != len(chosen) or not all(map(_can_delimit, chosen[1:3])):
        issues.add(
            RejectionReason.MALFORMED_INTERCHANGE,
            isa,
            "separators must be distinct and not letters, digits or spaces",
            element="ISA16",
        )
        return None
    return delimiters


def _detected_delimiters(text: str) -> Delimiters:
    element = text[2]
    terminator = DEFAULT_DELIMITERS.segment
    for char in text[3:]:
        if not (char.isalnum() or char == element or char in " .-"):
            terminator = "\n" if char in _NEWLINES else char
            break
    component = DEFAULT_DELIMITERS.component
    svc = re.search(
        rf"(?:^|[{re.escape(terminator)}])\s*SVC{re.escape(element)}[A-Z0-9]{{2}}(.)", text
    )
    if svc and _can_delimit(svc[1]) and svc[1] not in (element, terminator):
        component = svc[1]
    return Delimiters(element=element, component=component, segment=terminator, repetition=None)


def _segments(text: str, delimiters: Delimiters, issues: IssueLog) -> list[Segment]:
    segments = []
    position = 0
    for raw in text.split(delimiters.segment):
        raw = raw.strip(_NEWLINES)
        if not raw:
            continue
        position += 1
        tag, *elements = raw.split(delimiters.element)
        if not _TAG.fullmatch(tag):
            issues.add(
                RejectionReason.MALFORMED_INTERCHANGE,
                Segment("", (), position),
                "not an X12 segment (no segment tag of 2-3 letters or digits)",
            )
            continue
        segments.append(Segment(tag, tuple(elements), position))
    return segments
