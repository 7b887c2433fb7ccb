"""Why a FHIR input is refused, and the OperationOutcome that tells the sender.

``code`` is a FHIR issue type (http://hl7.org/fhir/R4/valueset-issue-type.html);
``reason`` is the stable slug kept in the exception store and used by tests and dashboards;
``expression`` is a FHIRPath to the offending element, e.g. ``Appointment.start``.
Messages name the element and the rule, never a patient's data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

log = logging.getLogger(__name__)

STRUCTURE: Final = "structure"
REQUIRED: Final = "required"
VALUE: Final = "value"
INVALID: Final = "invalid"
CODE_INVALID: Final = "code-invalid"
NOT_SUPPORTED: Final = "not-supported"
TRANSIENT: Final = "transient"
EXCEPTION: Final = "exception"
INFORMATIONAL: Final = "informational"
REASON_SYSTEM: Final = "urn:carebus:reason"


class FhirProblem(ValueError):
    """One reason a FHIR input cannot become canonical events."""

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


def status_of(problems: Sequence[FhirProblem]) -> int:
    """The HTTP status of a refusal: 400 when any problem is the request's form, else the
    highest."""
    return 400 if any(p.status == 400 for p in problems) else max(p.status for p in problems)


def issue(problem: FhirProblem, severity: str = "error") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "severity": severity,
        "code": problem.code,
        "details": {"coding": [{"system": REASON_SYSTEM, "code": problem.reason}]},
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


def internal_error(exc: Exception) -> FhirProblem:
    """A mapping bug: answered 500 and the input kept, for a re-drive once fixed.  Logged
    with its traceback (the exception's text may quote the input: it is not answered)."""
    log.exception("FHIR input could not be mapped (internal error)")
    return FhirProblem(
        "internal_error", f"internal error: {type(exc).__name__}", code=EXCEPTION, status=500
    )
