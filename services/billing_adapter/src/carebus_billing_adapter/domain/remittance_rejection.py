"""Why a remittance file was refused. A file is accepted whole or rejected whole."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class RejectionReason(enum.StrEnum):
    NOT_X12 = "not_x12"  # no ISA, GS or ST at the start: not an X12 interchange at all
    MALFORMED_INTERCHANGE = "malformed_interchange"  # ISA width, separators, garbled segments
    ENVELOPE_STRUCTURE = "envelope_structure"  # ISA/GS/ST nesting, missing trailers
    CONTROL_NUMBER_MISMATCH = "control_number_mismatch"
    COUNT_MISMATCH = "count_mismatch"  # SE01, GE01, IEA01
    UNSUPPORTED_TRANSACTION = "unsupported_transaction"  # ST01 other than 835
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    MISSING_SEGMENT = "missing_segment"
    UNEXPECTED_SEGMENT = "unexpected_segment"
    MISSING_ELEMENT = "missing_element"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_DATE = "invalid_date"
    INVALID_CODE = "invalid_code"
    INVALID_COMPOSITE = "invalid_composite"
    SERVICE_LINE_UNBALANCED = "service_line_unbalanced"
    CLAIM_UNBALANCED = "claim_unbalanced"
    PAYMENT_UNBALANCED = "payment_unbalanced"
    CONTRACT_VIOLATION = "contract_violation"  # a value the canonical event cannot carry


class Issue(msgspec.Struct, frozen=True, kw_only=True):
    reason: RejectionReason
    # e.g. "CLP04 (segment 23): not a decimal amount": the rule, never the value
    message: str
    segment_tag: str | None = None
    segment_position: int | None = None  # 1-based, counted over the whole file
    element: str | None = None  # e.g. "CLP04" or "SVC01-2"
    patient_control_number: str | None = None  # the claim the issue belongs to, if any
    expected_minor: int | None = None  # balancing failures only
    actual_minor: int | None = None


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    file_digest: str
    issues: list[Issue]

    @property
    def reasons(self) -> frozenset[RejectionReason]:
        return frozenset(issue.reason for issue in self.issues)

    @property
    def claims(self) -> list[str]:
        """The claims (patient control numbers) an issue names, sorted."""
        return sorted({i.patient_control_number for i in self.issues if i.patient_control_number})

    def report(self) -> dict[str, Any]:
        """Every issue with where it is: the body a sender (or a person re-driving) reads.
        The claim is located by its segment, not named (a patient control number is PHI)."""
        return {
            "digest": self.file_digest,
            "issues": [
                {
                    "reason": str(issue.reason),
                    "message": issue.message,
                    "segment": issue.segment_tag,
                    "segment_position": issue.segment_position,
                    "element": issue.element,
                    "expected_minor": issue.expected_minor,
                    "actual_minor": issue.actual_minor,
                }
                for issue in self.issues
            ],
        }


class RemittanceRejected(Exception):
    """Raised instead of returning a remittance; nothing from the file may be posted."""

    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        lines = "\n".join(f"  [{issue.reason}] {issue.message}" for issue in rejection.issues)
        super().__init__(f"835 rejected with {len(rejection.issues)} issue(s):\n{lines}")
