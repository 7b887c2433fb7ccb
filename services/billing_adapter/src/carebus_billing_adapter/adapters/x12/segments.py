"""A tokenized X12 segment and the delimiters it was written with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str
    component: str
    segment: str
    repetition: str | None  # ISA11 from version 00501 on; 4010 has none


DEFAULT_DELIMITERS = Delimiters(element="*", component=":", segment="~", repetition=None)


@dataclass(frozen=True, slots=True)
class Segment:
    tag: str
    elements: tuple[str, ...]  # elements[0] is element 01
    position: int  # 1-based ordinal of the segment in the whole file

    def element(self, number: int) -> str:
        """Element ``number`` (1-based) or "" when the segment is shorter."""
        return self.elements[number - 1] if number <= len(self.elements) else ""

    def element_name(self, number: int) -> str:
        return f"{self.tag}{number:02d}"
