"""Why a FHIR resource was refused: :class:`FhirRejected`, one or more shared
:class:`~carebus_shared.fhir.outcome.FhirProblem` (reason slug, FHIR issue type, FHIRPath,
HTTP status), answered as the shared ``OperationOutcome``."""

from __future__ import annotations

from carebus_shared.fhir.outcome import FhirProblem, operation_outcome, status_of

__all__ = ["FhirProblem", "FhirRejected", "operation_outcome"]


class FhirRejected(Exception):
    """A resource carebus will not accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, issues: list[FhirProblem], status: int | None = None) -> None:
        self.issues = issues
        self.status = status if status is not None else status_of(issues)
        super().__init__("; ".join(str(i) for i in issues))

    @classmethod
    def one(
        cls,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        *,
        reason: str,
        status: int = 422,
        value: str | None = None,
    ) -> FhirRejected:
        return cls(
            [
                FhirProblem(
                    reason,
                    diagnostics,
                    code=code,
                    expression=expression,
                    value=value,
                    status=status,
                )
            ]
        )
