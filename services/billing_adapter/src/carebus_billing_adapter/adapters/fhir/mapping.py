"""FHIR R4 billing resources → canonical billing events.

* ``ChargeItem`` → ``billing.charge.posted`` (status billable, billed or unknown) or
  ``billing.charge.reversed`` (entered-in-error, aborted). ``priceOverride`` is the charged
  amount for all units, as the HL7 v2-to-FHIR mapping writes FT1-11 there.
* ``ClaimResponse`` (use claim) → ``billing.claim.adjudicated`` (v2): ``total`` submitted → billed,
  benefit (else ``payment.amount``) → paid, copay + deductible → patient responsibility.
  Header ``adjudication`` entries whose category is an X12 group code (CO, PR, OA, PI, CR) and
  whose reason is a CARC become claim adjustments. The payment itself is left to
  PaymentReconciliation, so a client sending both does not post the money twice.
* ``PaymentReconciliation`` → one ``billing.payment.posted`` per ``detail`` of type payment
  (or one for ``paymentAmount`` when there is no detail) and a provider-level
  ``billing.adjustment.posted`` per other detail; the details must add up to
  ``paymentAmount``. A cancelled or entered-in-error reconciliation posts the negation.

Event ids are ``fhir:<type>/<id>:<content digest>``: a retried request yields the same ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import msgspec

from carebus_billing_adapter.adapters.fhir import values
from carebus_billing_adapter.adapters.fhir.decode import RESOURCE_TYPES, decode_resource
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.adapters.fhir.resources import (
    Adjudication,
    ChargeItem,
    ClaimResponse,
    PaymentReconciliation,
    Reference,
    Total,
)
from carebus_contracts import billing as b
from carebus_contracts.checks import ContractViolation, all_checked
from carebus_contracts.envelope import Event, Money

_CHARGE_POSTED: Final = frozenset({"billable", "billed", "unknown"})
_CHARGE_REVERSED: Final = frozenset({"entered-in-error", "aborted"})
_RECONCILIATION_REVERSED: Final = frozenset({"cancelled", "entered-in-error"})
_GROUPS: Final = frozenset(group.value for group in b.CarcGroup)
_MAX_UNITS: Final = 999_999_999


class FhirContext(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    source_system: str
    timezone: dt.tzinfo
    currency: str
    recorded_at: dt.datetime


class _Envelope:
    def __init__(
        self, resource: ChargeItem | ClaimResponse | PaymentReconciliation, resource_id: str,
        ctx: FhirContext,
    ) -> None:  # fmt: skip
        self.name = resource.resource_type
        self.resource_id = resource_id
        self.ctx = ctx
        self.digest = hashlib.sha256(msgspec.json.encode(resource)).hexdigest()[:16]
        self.version = values.entity_version(resource.meta, ctx.recorded_at, ctx.timezone)

    def __call__(self, occurred_at: dt.datetime, entity_key: str, part: str = "") -> dict[str, Any]:
        suffix = f":{part}" if part else ""
        return {
            "event_id": f"fhir:{self.name}/{self.resource_id}:{self.digest}{suffix}",
            "occurred_at": occurred_at,
            "recorded_at": self.ctx.recorded_at,
            "source_system": self.ctx.source_system,
            "site": self.ctx.site,
            "correlation_id": f"fhir:{self.name}/{self.resource_id}",
            "entity_key": entity_key,
            "entity_version": self.version,
        }


def _key(ref: Reference | None) -> str | None:
    return ref.key() if ref is not None else None


def _status(value: str | None, path: str, allowed: frozenset[str]) -> str:
    if value in allowed:
        return value
    raise FhirRejected.one(
        "value",
        f"status cannot be posted; expected one of {', '.join(sorted(allowed))}",
        path,
        reason="status_not_postable",
        value=value,
    )


# -- ChargeItem ---------------------------------------------------------------------------


def charge_item_events(item: ChargeItem, resource_id: str, ctx: FhirContext) -> list[Event]:
    status = _status(item.status, "ChargeItem.status", _CHARGE_POSTED | _CHARGE_REVERSED)
    charge_id = next((i.value for i in item.identifier if i.value), None) or resource_id
    code = item.code.first_code() if item.code else None
    occurred_text: str | None = item.occurrence_date_time
    occurred_path = "ChargeItem.occurrenceDateTime"
    if not occurred_text:
        occurred_text = item.occurrence_period.start if item.occurrence_period else None
        occurred_path = "ChargeItem.occurrence"
    occurred_at = values.instant(occurred_text, occurred_path, ctx.timezone)
    quantity = item.quantity.value if item.quantity and item.quantity.value is not None else 1
    quantity = Decimal(quantity)
    # Checked before int(): int(Decimal("1E999999999")) builds a billion-digit number.
    if (
        not quantity.is_finite()
        or not 1 <= quantity <= _MAX_UNITS
        or quantity != quantity.to_integral_value()
    ):
        raise FhirRejected.one(
            "value", f"quantity is not a whole number of units from 1 to {_MAX_UNITS}",
            "ChargeItem.quantity.value", reason="invalid_quantity",
        )  # fmt: skip
    performer = next((p.actor for p in item.performer if p.actor), None)
    amount = values.money(item.price_override, "ChargeItem.priceOverride", ctx.currency)
    charge = b.Charge(
        charge_id=charge_id,
        patient_ref=values.required_key(_key(item.subject), "ChargeItem.subject", "the patient"),
        encounter_id=_key(item.context),
        service_code=values.required_key(code, "ChargeItem.code", "a service code"),
        units=int(quantity),
        amount=amount,
        service_date=occurred_at.date(),
        performing_provider_code=_key(performer),
        department_code=_key(item.cost_center),
    )
    envelope = _Envelope(item, resource_id, ctx)
    if status in _CHARGE_REVERSED:
        reversed_charge = msgspec.structs.replace(
            charge, amount=Money(amount_minor=abs(amount.amount_minor), currency=amount.currency)
        )
        return [
            b.ChargeReversed(
                **envelope(occurred_at, charge_id),
                charge=reversed_charge,
                reversed_charge_id=charge_id,
                reason=f"ChargeItem status {status}",
            )
        ]
    return [b.ChargePosted(**envelope(occurred_at, charge_id), charge=charge)]


# -- ClaimResponse ------------------------------------------------------------------------


def _totals(totals: list[Total], ctx: FhirContext) -> dict[str, Money]:
    found: dict[str, Money] = {}
    for n, total in enumerate(totals):
        category = total.category.first_code() if total.category else None
        if category:
            path = f"ClaimResponse.total[{n}].amount"
            amount = values.money(total.amount, path, ctx.currency)
            if category in found:
                amount = Money(
                    amount_minor=found[category].amount_minor + amount.amount_minor,
                    currency=amount.currency,
                )
            found[category] = amount
    return found


def _claim_adjustments(entries: list[Adjudication], ctx: FhirContext) -> list[b.ClaimAdjustment]:
    adjustments = []
    for n, entry in enumerate(entries):
        group = entry.category.first_code() if entry.category else None
        if group not in _GROUPS:
            continue
        reason = entry.reason.first_code() if entry.reason else None
        path = f"ClaimResponse.adjudication[{n}]"
        adjustments.append(
            b.ClaimAdjustment(
                group_code=b.CarcGroup(group),
                reason_code=values.required_key(reason, f"{path}.reason", "a CARC reason"),
                amount=values.money(entry.amount, f"{path}.amount", ctx.currency),
            )
        )
    return adjustments


def claim_response_events(
    response: ClaimResponse, resource_id: str, ctx: FhirContext
) -> list[Event]:
    if response.use not in (None, "claim"):
        raise FhirRejected.one(
            "not-supported",
            "a ClaimResponse of a use other than claim adjudicates no claim: nothing to post "
            "(carebus takes use 'claim')",
            "ClaimResponse.use", reason="unsupported_use", value=response.use,
        )  # fmt: skip
    if response.outcome == "queued":
        raise FhirRejected.one(
            "value", "a queued ClaimResponse is not adjudicated yet", "ClaimResponse.outcome",
            reason="not_adjudicated",
        )  # fmt: skip
    reversed_ = response.status == "entered-in-error"
    if not reversed_:
        _status(response.status, "ClaimResponse.status", frozenset({"active"}))
    totals = _totals(response.total, ctx)
    if "submitted" not in totals and response.outcome == "error":
        raise FhirRejected.one(
            "value",
            "a ClaimResponse with outcome 'error' and no totals was not adjudicated "
            "(its errors say why): nothing to post",
            "ClaimResponse.outcome", reason="not_adjudicated",
        )  # fmt: skip
    if "submitted" not in totals:
        raise FhirRejected.one(
            "required", "a total with category 'submitted' (the billed amount) is required",
            "ClaimResponse.total", reason="missing_amount",
        )  # fmt: skip
    paid = totals.get("benefit")
    if paid is None:
        payment = response.payment.amount if response.payment else None
        paid = values.money(payment, "ClaimResponse.payment.amount", ctx.currency)
    responsibility = [totals[c] for c in ("copay", "deductible") if c in totals]
    adjudicated_on = values.date(response.created, "ClaimResponse.created")
    claim_id = values.required_key(_key(response.request), "ClaimResponse.request", "the claim")
    status = (
        b.ClaimStatus.REVERSED
        if reversed_
        else b.ClaimStatus.DENIED
        if response.outcome == "error"
        else b.ClaimStatus.PAID
    )
    occurred_at = dt.datetime.combine(adjudicated_on, dt.time(), tzinfo=ctx.timezone)
    payer = _key(response.insurer) or (response.insurer.display if response.insurer else None)
    return [
        b.ClaimAdjudicatedV2(
            **_Envelope(response, resource_id, ctx)(occurred_at, claim_id),
            claim_id=claim_id,
            payer_code=values.required_key(payer, "ClaimResponse.insurer", "the insurer"),
            payer_claim_id=next((i.value for i in response.identifier if i.value), None),
            status=status,
            totals=b.ClaimTotals(
                billed=totals["submitted"],
                paid=paid,
                patient_responsibility=Money(
                    amount_minor=sum(m.amount_minor for m in responsibility),
                    currency=responsibility[0].currency,
                )
                if responsibility
                else None,
            ),
            adjudicated_on=adjudicated_on,
            claim_adjustments=tuple(_claim_adjustments(response.adjudication, ctx)),
            payment_reference=response.payment.identifier.value
            if response.payment and response.payment.identifier
            else None,
        )
    ]


# -- PaymentReconciliation ----------------------------------------------------------------


def payment_reconciliation_events(
    recon: PaymentReconciliation, resource_id: str, ctx: FhirContext
) -> list[Event]:
    status = _status(
        recon.status,
        "PaymentReconciliation.status",
        frozenset({"active"}) | _RECONCILIATION_REVERSED,
    )
    sign = -1 if status in _RECONCILIATION_REVERSED else 1
    total = values.money(recon.payment_amount, "PaymentReconciliation.paymentAmount", ctx.currency)
    received_on = values.date(recon.payment_date, "PaymentReconciliation.paymentDate")
    occurred_at = dt.datetime.combine(received_on, dt.time(), tzinfo=ctx.timezone)
    payer = _key(recon.payment_issuer) or (
        recon.payment_issuer.display if recon.payment_issuer else None
    )
    reference = recon.payment_identifier.value if recon.payment_identifier else None
    base_id = next((i.value for i in recon.identifier if i.value), None) or resource_id
    envelope = _Envelope(recon, resource_id, ctx)
    part_prefix = "reversal-" if sign < 0 else ""

    def signed(amount: Money) -> Money:
        return Money(amount_minor=sign * amount.amount_minor, currency=amount.currency)

    def payment(n: int, amount: Money, claim_id: str | None) -> Event:
        payment_id = f"{base_id}-{n}" if recon.detail else base_id
        return b.PaymentPosted(
            **envelope(occurred_at, payment_id, f"{part_prefix}{n}"),
            payment_id=payment_id,
            payer_code=payer,
            claim_id=claim_id,
            amount=signed(amount),
            received_on=received_on,
            reference=reference,
        )

    if not recon.detail:
        return [payment(0, total, None)]
    events: list[Event] = []
    detail_sum = 0
    for n, detail in enumerate(recon.detail):
        path = f"PaymentReconciliation.detail[{n}]"
        amount = values.money(detail.amount, f"{path}.amount", ctx.currency)
        detail_sum += amount.amount_minor
        kind = detail.type.first_code() if detail.type else None
        if kind == "payment":
            events.append(payment(n + 1, amount, _key(detail.request) or _key(detail.response)))
            continue
        adjustment_id = (detail.identifier.value if detail.identifier else None) or (
            f"{base_id}-{n + 1}"
        )
        events.append(
            b.AdjustmentPosted(
                **envelope(occurred_at, adjustment_id, f"{part_prefix}{n + 1}"),
                adjustment_id=adjustment_id,
                claim_id=_key(detail.request),
                payer_code=payer,
                group_code=b.CarcGroup.OTHER,
                reason_code=values.required_key(kind, f"{path}.type", "the detail type"),
                # A detail adds to the payment; an adjustment is positive when it reduces it.
                amount=signed(Money(amount_minor=-amount.amount_minor, currency=amount.currency)),
                scope=b.AdjustmentScope.PROVIDER,
            )
        )
    if detail_sum != total.amount_minor:
        raise FhirRejected.one(
            "value",
            f"the details add up to {detail_sum} minor units, paymentAmount is "
            f"{total.amount_minor}",
            "PaymentReconciliation.detail",
            reason="payment_unbalanced",
        )
    return events


# -- one resource -------------------------------------------------------------------------

_MAPPERS: Final[dict[str, Callable[[Any, str, FhirContext], list[Event]]]] = {
    "ChargeItem": charge_item_events,
    "ClaimResponse": claim_response_events,
    "PaymentReconciliation": payment_reconciliation_events,
}


def resource_events(
    resource_type: str, body: bytes, url_id: str | None, ctx: FhirContext
) -> tuple[str, list[Event]]:
    """A ChargeItem, ClaimResponse or PaymentReconciliation → its server id and its events,
    checked against their contracts; raises :class:`FhirRejected`.

    ``url_id`` is the id an update names (the body's own id must agree); a create gets an id
    derived from the content, so a retried create is the same resource.
    """
    resource = decode_resource(RESOURCE_TYPES[resource_type], body)
    if url_id is not None and resource.id is not None and resource.id != url_id:
        raise FhirRejected.one(
            "invalid", "the body's id differs from the URL's",
            f"{resource_type}.id", reason="id_mismatch", status=400, value=resource.id,
        )  # fmt: skip
    resource_id = url_id or values.content_id(resource_type, resource)
    try:
        events = all_checked(_MAPPERS[resource_type](resource, resource_id, ctx))
    except ContractViolation as exc:
        raise FhirRejected.one(
            "value", f"{exc.event_type}: {exc.reason} at {exc.path}",
            resource_type, reason="contract_violation",
        ) from None  # fmt: skip
    return resource_id, events
