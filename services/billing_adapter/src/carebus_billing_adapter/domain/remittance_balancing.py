"""The 835 balancing rules, as pure functions over the remittance model.

* service line: SVC02 charge - sum(line CAS) = SVC03 paid
* claim: CLP03 charge - sum(claim CAS + line CAS) = CLP04 paid
* payment: BPR02 = sum(CLP04) - sum(PLB amounts); a positive PLB amount is money the payer keeps
"""

from __future__ import annotations

import enum

import msgspec

from carebus_billing_adapter.domain.remittance import Adjustment, ClaimPayment, Remittance


class BalanceScope(enum.StrEnum):
    SERVICE_LINE = "service_line"
    CLAIM = "claim"
    PAYMENT = "payment"


class Imbalance(msgspec.Struct, frozen=True, kw_only=True):
    scope: BalanceScope
    claim_index: int | None  # 0-based position of the claim in the remittance
    line_index: int | None  # 0-based position of the service line in the claim
    patient_control_number: str | None
    expected_minor: int  # what the other figures add up to
    actual_minor: int  # what the file states


class RemittanceTotals(msgspec.Struct, frozen=True, kw_only=True):
    declared_payment_minor: int  # BPR02
    claim_payments_minor: int  # sum of CLP04: what is posted against claims
    provider_adjustments_minor: int  # sum of PLB amounts
    net_payment_minor: int  # claim payments less provider adjustments

    @property
    def balances(self) -> bool:
        return self.net_payment_minor == self.declared_payment_minor


def format_minor_units(amount_minor: int) -> str:
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def _adjusted(adjustments: list[Adjustment]) -> int:
    return sum(adjustment.amount_minor for adjustment in adjustments)


def claim_adjustments_minor(claim: ClaimPayment) -> int:
    """Claim-level plus service-line adjustments: everything between charge and payment."""
    return _adjusted(claim.adjustments) + sum(
        _adjusted(line.adjustments) for line in claim.service_lines
    )


def remittance_totals(remittance: Remittance) -> RemittanceTotals:
    claims = sum(claim.paid_minor for claim in remittance.claims)
    provider = sum(plb.amount_minor for plb in remittance.provider_adjustments)
    return RemittanceTotals(
        declared_payment_minor=remittance.payment.amount_minor,
        claim_payments_minor=claims,
        provider_adjustments_minor=provider,
        net_payment_minor=claims - provider,
    )


def claim_imbalances(claim_index: int, claim: ClaimPayment) -> list[Imbalance]:
    found = []
    for line_index, line in enumerate(claim.service_lines):
        expected = line.charge_minor - _adjusted(line.adjustments)
        if expected != line.paid_minor:
            found.append(
                Imbalance(
                    scope=BalanceScope.SERVICE_LINE,
                    claim_index=claim_index,
                    line_index=line_index,
                    patient_control_number=claim.patient_control_number,
                    expected_minor=expected,
                    actual_minor=line.paid_minor,
                )
            )
    expected = claim.charge_minor - claim_adjustments_minor(claim)
    if expected != claim.paid_minor:
        found.append(
            Imbalance(
                scope=BalanceScope.CLAIM,
                claim_index=claim_index,
                line_index=None,
                patient_control_number=claim.patient_control_number,
                expected_minor=expected,
                actual_minor=claim.paid_minor,
            )
        )
    return found


def payment_imbalance(remittance: Remittance) -> Imbalance | None:
    totals = remittance_totals(remittance)
    if totals.balances:
        return None
    return Imbalance(
        scope=BalanceScope.PAYMENT,
        claim_index=None,
        line_index=None,
        patient_control_number=None,
        expected_minor=totals.net_payment_minor,
        actual_minor=totals.declared_payment_minor,
    )


def find_imbalances(remittance: Remittance) -> list[Imbalance]:
    """Every balancing failure of the remittance, service lines first, then claims, then payment."""
    found = [
        imbalance
        for index, claim in enumerate(remittance.claims)
        for imbalance in claim_imbalances(index, claim)
    ]
    payment = payment_imbalance(remittance)
    if payment is not None:
        found.append(payment)
    return found
