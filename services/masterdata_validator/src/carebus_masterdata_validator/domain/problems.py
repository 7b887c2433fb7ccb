"""Why a master-data request is refused: what an HTTP problem body says (no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


def invalid(errors: list[FieldError], detail: str | None = None) -> Problem:
    fields = ", ".join(e.field for e in errors)
    return Problem(422, "Invalid master data", detail or f"invalid field(s): {fields}", errors)


def not_found(kind: str, record_id: str) -> Problem:
    return Problem(404, "Not found", f"no {kind} {record_id!r}")
