"""The parts of the FHIR R4 resources the adapter reads, as msgspec structs.

Only what is mapped is declared; other elements are ignored on decode. Decimals are read as
``Decimal`` straight from the JSON text, so an amount is never a float.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class _Fhir(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class Coding(_Fhir, frozen=True, kw_only=True):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_Fhir, frozen=True, kw_only=True):
    coding: list[Coding] = []
    text: str | None = None

    def first_code(self) -> str | None:
        return next((c.code for c in self.coding if c.code), None)


class Identifier(_Fhir, frozen=True, kw_only=True):
    system: str | None = None
    value: str | None = None


class Reference(_Fhir, frozen=True, kw_only=True):
    reference: str | None = None
    identifier: Identifier | None = None
    display: str | None = None

    def key(self) -> str | None:
        """The referenced resource's business key: identifier, else the id of a literal
        reference ("Patient/123" → "123"), else None."""
        if self.identifier is not None and self.identifier.value:
            return self.identifier.value
        if self.reference:
            return self.reference.rstrip("/").rsplit("/", 1)[-1] or None
        return None


class Money(_Fhir, frozen=True, kw_only=True):
    value: Decimal | None = None
    currency: str | None = None


class Quantity(_Fhir, frozen=True, kw_only=True):
    value: Decimal | None = None


class Period(_Fhir, frozen=True, kw_only=True):
    start: str | None = None
    end: str | None = None


class Meta(_Fhir, frozen=True, kw_only=True):
    version_id: str | None = None
    last_updated: str | None = None


class Performer(_Fhir, frozen=True, kw_only=True):
    actor: Reference | None = None


class ChargeItem(_Fhir, frozen=True, kw_only=True):
    resource_type: str
    id: str | None = None
    meta: Meta | None = None
    identifier: list[Identifier] = []
    status: str | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    context: Reference | None = None
    occurrence_date_time: str | None = None
    occurrence_period: Period | None = None
    entered_date: str | None = None
    performer: list[Performer] = []
    performing_organization: Reference | None = None
    cost_center: Reference | None = None
    quantity: Quantity | None = None
    price_override: Money | None = None
    account: list[Reference] = []


class Adjudication(_Fhir, frozen=True, kw_only=True):
    category: CodeableConcept | None = None
    reason: CodeableConcept | None = None
    amount: Money | None = None


class Total(_Fhir, frozen=True, kw_only=True):
    category: CodeableConcept | None = None
    amount: Money | None = None


class ClaimResponsePayment(_Fhir, frozen=True, kw_only=True):
    date: str | None = None
    amount: Money | None = None
    identifier: Identifier | None = None


class ClaimResponse(_Fhir, frozen=True, kw_only=True):
    resource_type: str
    id: str | None = None
    meta: Meta | None = None
    identifier: list[Identifier] = []
    status: str | None = None
    use: str | None = None
    outcome: str | None = None
    created: str | None = None
    insurer: Reference | None = None
    request: Reference | None = None
    adjudication: list[Adjudication] = []
    total: list[Total] = []
    payment: ClaimResponsePayment | None = None


class ReconciliationDetail(_Fhir, frozen=True, kw_only=True):
    identifier: Identifier | None = None
    type: CodeableConcept | None = None
    request: Reference | None = None
    response: Reference | None = None
    date: str | None = None
    amount: Money | None = None


class PaymentReconciliation(_Fhir, frozen=True, kw_only=True):
    resource_type: str
    id: str | None = None
    meta: Meta | None = None
    identifier: list[Identifier] = []
    status: str | None = None
    created: str | None = None
    payment_issuer: Reference | None = None
    payment_date: str | None = None
    payment_amount: Money | None = None
    payment_identifier: Identifier | None = None
    detail: list[ReconciliationDetail] = []
