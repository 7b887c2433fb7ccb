"""Why a FHIR resource was refused, and the OperationOutcome that says so."""

from __future__ import annotations

from typing import Any

import msgspec


class FhirIssue(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # FHIR issue-type: invalid, required, value, structure, not-supported, ...
    diagnostics: str
    expression: str | None = None  # FHIRPath of the offending element, e.g. ChargeItem.subject
    reason: str = "invalid_resource"  # stable slug for the exception store


class FhirRejected(Exception):
    """A resource carebus will not accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, issues: list[FhirIssue], status: int = 422) -> None:
        self.issues = issues
        self.status = status
        super().__init__("; ".join(_describe(i) for i in issues))

    @classmethod
    def one(
        cls,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        *,
        reason: str,
        status: int = 422,
    ) -> FhirRejected:
        return cls(
            [FhirIssue(code=code, diagnostics=diagnostics, expression=expression, reason=reason)],
            status,
        )


def _describe(issue: FhirIssue) -> str:
    return f"{issue.expression}: {issue.diagnostics}" if issue.expression else issue.diagnostics


def operation_outcome(issues: list[FhirIssue], severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue.code,
                "diagnostics": issue.diagnostics,
                **({"expression": [issue.expression]} if issue.expression else {}),
            }
            for issue in issues
        ],
    }
