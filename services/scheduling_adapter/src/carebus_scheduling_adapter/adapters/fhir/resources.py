"""The parts of FHIR R4 resources the adapter reads, decoded straight from bytes by msgspec
(``carebus_shared.fhir.decoding``: unknown elements are ignored, a known element of the wrong
JSON type is refused naming its FHIRPath)."""

from __future__ import annotations

from typing import Any

import msgspec


class _Element(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class Coding(_Element, frozen=True, kw_only=True):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_Element, frozen=True, kw_only=True):
    coding: list[Coding] = []
    text: str | None = None

    def first_code(self) -> str | None:
        return next((c.code for c in self.coding if c.code), None)

    def label(self) -> str | None:
        """Text for people: the concept's text, else a coding's display or code."""
        if self.text:
            return self.text
        for coding in self.coding:
            if coding.display or coding.code:
                return coding.display or coding.code
        return None

    def has_code(self, *codes: str) -> bool:
        return any(c.code in codes for c in self.coding)


class Identifier(_Element, frozen=True, kw_only=True):
    system: str | None = None
    value: str | None = None
    type: CodeableConcept | None = None


class Reference(_Element, frozen=True, kw_only=True):
    reference: str | None = None
    identifier: Identifier | None = None
    display: str | None = None


class Meta(_Element, frozen=True, kw_only=True):
    version_id: str | None = None
    last_updated: str | None = None


class Period(_Element, frozen=True, kw_only=True):
    start: str | None = None
    end: str | None = None


class Participant(_Element, frozen=True, kw_only=True):
    actor: Reference | None = None
    type: list[CodeableConcept] = []
    status: str | None = None


class Appointment(_Element, frozen=True, kw_only=True):
    resource_type: str
    id: str | None = None
    meta: Meta | None = None
    identifier: list[Identifier] = []
    status: str | None = None
    cancelation_reason: CodeableConcept | None = None
    service_type: list[CodeableConcept] = []
    specialty: list[CodeableConcept] = []
    appointment_type: CodeableConcept | None = None
    reason_code: list[CodeableConcept] = []
    start: str | None = None
    end: str | None = None
    minutes_duration: int | None = None
    requested_period: list[Period] = []
    participant: list[Participant] = []
    based_on: list[Reference] = []


class ContextResource(_Element, frozen=True, kw_only=True):
    """Any other resource of a Bundle: read only to resolve an Appointment's references."""

    resource_type: str
    id: str | None = None
    identifier: list[Identifier] = []
    name: Any = None  # a string for Location, a list of HumanName for people
    practitioner: Reference | None = None  # PractitionerRole → Practitioner
    code: CodeableConcept | None = None  # ServiceRequest
