"""Turn balancing failures of the domain model into issues that point at the X12 segments."""

from __future__ import annotations

from carebus_billing_adapter.adapters.x12.claim_reader import ClaimDraft
from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.segments import Segment
from carebus_billing_adapter.domain.remittance import Remittance
from carebus_billing_adapter.domain.remittance_balancing import (
    BalanceScope,
    Imbalance,
    find_imbalances,
    format_minor_units,
    remittance_totals,
)
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

_money = format_minor_units


def _service_line_issue(
    imbalance: Imbalance,
    line_index: int,
    remittance: Remittance,
    draft: ClaimDraft,
    issues: IssueLog,
) -> None:
    claim = remittance.claims[imbalance.claim_index or 0]
    line = claim.service_lines[line_index]
    issues.add(
        RejectionReason.SERVICE_LINE_UNBALANCED,
        draft.lines[line_index].segment,
        f"service line {line_index + 1} of the claim "
        f"does not balance: SVC02 charge {_money(line.charge_minor)} - adjustments "
        f"{_money(line.charge_minor - imbalance.expected_minor)} = "
        f"{_money(imbalance.expected_minor)} expected, SVC03 paid is "
        f"{_money(imbalance.actual_minor)}",
        element="SVC03",
        claim=claim.patient_control_number,
        expected_minor=imbalance.expected_minor,
        actual_minor=imbalance.actual_minor,
    )


def _claim_issue(
    imbalance: Imbalance, remittance: Remittance, draft: ClaimDraft, issues: IssueLog
) -> None:
    claim = remittance.claims[imbalance.claim_index or 0]
    issues.add(
        RejectionReason.CLAIM_UNBALANCED,
        draft.segment,
        f"the claim does not balance: CLP03 charge "
        f"{_money(claim.charge_minor)} - adjustments "
        f"{_money(claim.charge_minor - imbalance.expected_minor)} = "
        f"{_money(imbalance.expected_minor)} expected, CLP04 paid is "
        f"{_money(imbalance.actual_minor)}",
        element="CLP04",
        claim=claim.patient_control_number,
        expected_minor=imbalance.expected_minor,
        actual_minor=imbalance.actual_minor,
    )


def _payment_issue(
    imbalance: Imbalance, remittance: Remittance, bpr: Segment, issues: IssueLog
) -> None:
    totals = remittance_totals(remittance)
    issues.add(
        RejectionReason.PAYMENT_UNBALANCED,
        bpr,
        f"payment does not balance: claim payments {_money(totals.claim_payments_minor)} - "
        f"provider adjustments {_money(totals.provider_adjustments_minor)} = "
        f"{_money(imbalance.expected_minor)} expected, BPR02 is "
        f"{_money(imbalance.actual_minor)}",
        element="BPR02",
        expected_minor=imbalance.expected_minor,
        actual_minor=imbalance.actual_minor,
    )


def report_imbalances(
    remittance: Remittance,
    bpr: Segment,
    drafts: list[ClaimDraft],
    every_amount_read: bool,
    issues: IssueLog,
) -> None:
    """Log each imbalance. Claims with unreadable amounts are skipped (their placeholders would
    only produce noise) and so is the payment total unless every amount of the file was read."""
    for imbalance in find_imbalances(remittance):
        if imbalance.scope is BalanceScope.PAYMENT:
            if every_amount_read:
                _payment_issue(imbalance, remittance, bpr, issues)
            continue
        draft = drafts[imbalance.claim_index or 0]
        if draft.tainted:
            continue
        if imbalance.line_index is not None:
            _service_line_issue(imbalance, imbalance.line_index, remittance, draft, issues)
        else:
            _claim_issue(imbalance, remittance, draft, issues)
