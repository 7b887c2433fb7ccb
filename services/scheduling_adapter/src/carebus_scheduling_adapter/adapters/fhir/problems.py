"""Why a FHIR input is refused, and the OperationOutcome that tells the sender.

``code`` is a FHIR issue type (http://hl7.org/fhir/R4/valueset-issue-type.html);
``reason`` is the stable slug kept in the exception store and used by tests and dashboards;
``expression`` is a FHIRPath to the offending element, e.g. ``Appointment.start``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

STRUCTURE: Final = "structure"
REQUIRED: Final = "required"
VALUE: Final = "value"
INVALID: Final = "invalid"
CODE_INVALID: Final = "code-invalid"
NOT_SUPPORTED: Final = "not-supported"
TRANSIENT: Final = "transient"
EXCEPTION: Final = "exception"
INFORMATIONAL: Final = "informational"


class FhirProblem(ValueError):
    """One reason a FHIR input cannot become an appointment event."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        code: str = INVALID,
        expression: str | None = None,
        value: str | None = None,
        status: int = 422,
    ) -> None:
        self.reason = reason
        self.message = message
        self.code = code
        self.expression = expression
        self.value = value
        self.status = status
        super().__init__(f"{expression}: {message}" if expression else message)

    def at(self, prefix: str) -> FhirProblem:
        """The same problem located inside a container (``Bundle.entry[2].resource``)."""
        inner = self.expression or ""
        # 'Appointment.start' inside an entry becomes 'Bundle.entry[2].resource.start'.
        tail = inner.split(".", 1)[1] if "." in inner else ""
        return FhirProblem(
            self.reason,
            self.message,
            code=self.code,
            expression=f"{prefix}.{tail}" if tail else prefix,
            value=self.value,
            status=self.status,
        )


def issue(problem: FhirProblem, severity: str = "error") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "severity": severity,
        "code": problem.code,
        "details": {"coding": [{"system": "urn:carebus:reason", "code": problem.reason}]},
        "diagnostics": problem.message,
    }
    if problem.expression:
        entry["expression"] = [problem.expression]
    return entry


def operation_outcome(problems: Sequence[FhirProblem], severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue(p, severity) for p in problems]}


def information(message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": INFORMATIONAL, "diagnostics": message}],
    }
