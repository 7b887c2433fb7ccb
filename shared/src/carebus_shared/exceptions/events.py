"""The exception event (contract ``exceptions.exception.raised``) for a stored record.

The store is the record of truth; the event on the EXCEPTIONS stream lets operators and
tools follow exceptions live (``exceptions.mapper.>``, ``exceptions.*.masterdata.>``). The
v1 contract points at the original message in JetStream, so inputs that never reached a
stream (a malformed HL7 message) are in the store only.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from carebus_contracts.exceptions import ExceptionRaised, OriginalMessage, ReasonCategory, Stage
from carebus_shared.exceptions.store import ExceptionRecord

_STAGES = {stage.value: stage for stage in Stage}
_CATEGORIES = frozenset(category.value for category in ReasonCategory)


def stage_of(name: str) -> Stage | None:
    """'masterdata-validator-billing' (a consumer) or 'mapper' (a service) → its Stage."""
    normalised = name.replace("-", "_")
    for value, stage in _STAGES.items():
        if normalised == value or normalised.startswith(value + "_"):
            return stage
    return None


def exception_event(record: ExceptionRecord, record_id: int) -> ExceptionRaised | None:
    stage = stage_of(record.stage)
    if stage is None or record.stream is None or not record.stream_seq or not record.subject:
        return None
    if record.category not in _CATEGORIES:  # a category the v1 contract has no token for
        return None
    now = datetime.now(UTC)
    event_id = "exc-" + hashlib.blake2b(record.dedupe_key.encode(), digest_size=12).hexdigest()
    return ExceptionRaised(
        event_id=event_id,
        occurred_at=now,
        recorded_at=now,
        source_system="carebus",
        site=record.site or "_unknown",
        correlation_id=record.event_id or event_id,
        causation_id=record.event_id,
        entity_key=record.event_id or f"{record.stream}:{record.stream_seq}",
        entity_version=0,
        stage=stage,
        reason=ReasonCategory(record.category),
        reason_code=record.reason,
        message=f"{record.message} (exception record {record_id})",
        original=OriginalMessage(
            stream=record.stream,
            sequence=record.stream_seq,
            subject=record.subject,
            event_id=record.event_id,
        ),
        path=record.path,
        offending_value=record.offending_value,
        retryable=record.category == "transport",
    )
