"""Collects every problem found in a file, each pointing at a segment and element."""

from __future__ import annotations

from carebus_billing_adapter.adapters.x12.segments import Segment
from carebus_billing_adapter.domain.remittance_rejection import Issue, RejectionReason


class IssueLog:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def __len__(self) -> int:
        return len(self.issues)

    def add(
        self,
        reason: RejectionReason,
        segment: Segment | None,
        detail: str,
        *,
        element: str | None = None,
        claim: str | None = None,
        expected_minor: int | None = None,
        actual_minor: int | None = None,
    ) -> None:
        where = element or (segment.tag if segment else "")
        if segment is None:
            message = f"{where}: {detail}" if where else detail
        elif where:
            message = f"{where} (segment {segment.position}): {detail}"
        else:  # a fragment that did not even tokenize into a tag
            message = f"segment {segment.position}: {detail}"
        self.issues.append(
            Issue(
                reason=reason,
                message=message,
                segment_tag=segment.tag if segment and segment.tag else None,
                segment_position=segment.position if segment else None,
                element=element,
                patient_control_number=claim,
                expected_minor=expected_minor,
                actual_minor=actual_minor,
            )
        )
