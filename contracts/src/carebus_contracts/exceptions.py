"""Exceptions, v1: one event type for every business or technical failure.

Subject: ``exceptions.<stage>.<reason>.v1.<site>`` so operators can subscribe per stage
(``exceptions.mapper.>``) or per reason (``exceptions.*.masterdata.>``).  The event
points at the original message by stream and sequence so an operator tool can re-drive
it after the cause is fixed.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from carebus_contracts.envelope import Contract, Event, NonEmptyStr, SchemaVersion
from carebus_contracts.subjects import DOMAIN_EXCEPTIONS


class Stage(enum.StrEnum):
    """The service that raised the exception (a subject token)."""

    SCHEDULING_ADAPTER = "scheduling_adapter"
    BILLING_ADAPTER = "billing_adapter"
    MASTERDATA_VALIDATOR = "masterdata_validator"
    MAPPER = "mapper"
    ERP_POSTER = "erp_poster"


class ReasonCategory(enum.StrEnum):
    """The reason taxonomy (a subject token); ``reason_code`` says precisely what."""

    CONTRACT = "contract"
    """The message did not decode or failed a contract rule."""
    MASTERDATA = "masterdata"
    """A code could not be resolved to master data (e.g. unknown_provider)."""
    MAPPING = "mapping"
    """No mapping rule produced a journal (e.g. no_account_for_service)."""
    ERP_REJECTION = "erp_rejection"
    """The ERP refused a journal."""
    TRANSPORT = "transport"
    """NATS/ERP connectivity, timeouts, exhausted redeliveries."""


class OriginalMessage(Contract, frozen=True, kw_only=True):
    """Where the failed message is, so it can be fetched and re-driven."""

    stream: NonEmptyStr
    sequence: Annotated[int, msgspec.Meta(ge=1)]
    subject: NonEmptyStr
    event_id: str | None = None
    """None when the message could not be decoded far enough to read it."""
    payload: bytes | None = None
    """The raw message (base64 on the wire), for messages that did not decode."""


class ExceptionRaised(Event, tag="exceptions.exception.raised", frozen=True, kw_only=True):
    """The one exception event. Its subject comes from ``stage`` and ``reason``, not from
    the event type, so ``entity_key`` is the original's entity key when known, else
    ``"<stream>:<sequence>"``."""

    schema_version: SchemaVersion = "1.0"
    stage: Stage
    reason: ReasonCategory
    reason_code: NonEmptyStr
    """Specific and stable, snake_case, e.g. "unknown_provider", "unbalanced_journal"."""
    message: str
    """For humans: what went wrong and what to do."""
    original: OriginalMessage
    path: str | None = None
    """Where in the original payload, e.g. "$.lines[2].amount"."""
    offending_value: str | None = None
    retryable: bool = False

    def subject_tokens(self) -> tuple[str, str, str]:
        return DOMAIN_EXCEPTIONS, self.stage.value, self.reason.value


EXCEPTION_EVENTS: tuple[type[Event], ...] = (ExceptionRaised,)
