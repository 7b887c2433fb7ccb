"""What the poster knows about one journal, and the events it publishes about it.

A journal is identified by its ``journal_id`` (deterministic at the mapper), so a re-sent
request is the same journal. The key sent to the ERP is the journal id, suffixed with the
attempt number once the ERP has definitively rejected an earlier attempt: nothing was booked
then, and a re-drive after the fix must not be answered with the stored rejection.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TypedDict

import msgspec
from msgspec.structs import replace

from carebus_contracts.envelope import Event
from carebus_contracts.erp import (
    JournalConfirmed,
    JournalEntryRequested,
    JournalPosted,
    JournalRejected,
)
from carebus_shared.jetstream.publish import Outgoing, outgoing_for, stage_msg_id

STAGE = "erp-poster"
SOURCE_SYSTEM = "carebus-erp-poster"


class Status(enum.StrEnum):
    PENDING = "pending"  # the ERP accepted it for processing; confirmation outstanding
    CONFIRMED = "confirmed"  # booked, with the ERP's document number
    REJECTED = "rejected"  # the ERP refused it; nothing booked


def idempotency_key(journal_id: str, attempt: int) -> str:
    return journal_id if attempt == 0 else f"{journal_id}~{attempt}"


# Per-journal values are frozen msgspec Structs rather than frozen dataclasses: immutable
# alike, far cheaper to construct, and encoded straight to JSON for the database
# (docs/decisions/011).
class Posting(msgspec.Struct, frozen=True):
    """A decoded request the poster is about to post, with where it came from."""

    request: JournalEntryRequested
    stream_seq: int
    subject: str
    attempt: int = 0

    @property
    def journal_id(self) -> str:
        return self.request.journal_id

    @property
    def key(self) -> str:
        return idempotency_key(self.request.journal_id, self.attempt)


class JournalState(msgspec.Struct, frozen=True):
    """The poster's record of one journal (table journal_status): pending → confirmed|rejected."""

    journal_id: str
    connector: str
    attempt: int
    status: Status
    event_id: str  # the request that posted (or last tried to post) it
    site: str
    correlation_id: str
    entity_version: int
    stream_seq: int
    subject: str
    erp_request_id: str | None = None
    posted_at: dt.datetime | None = None
    confirmed_at: dt.datetime | None = None
    rejected_at: dt.datetime | None = None
    document_number: str | None = None
    fiscal_period: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_posted(self) -> bool:
        """Accepted by the ERP (pending or booked): posting it again would double it."""
        return self.status in (Status.PENDING, Status.CONFIRMED)

    @classmethod
    def for_posting(
        cls, posting: Posting, connector: str, status: Status = Status.PENDING, **known: object
    ) -> JournalState:
        """The state of a journal just posted; ``known`` adds what the ERP answered."""
        req = posting.request
        return cls(
            journal_id=req.journal_id,
            connector=connector,
            attempt=posting.attempt,
            status=status,
            event_id=req.event_id,
            site=req.site,
            correlation_id=req.correlation_id,
            entity_version=req.entity_version,
            stream_seq=posting.stream_seq,
            subject=posting.subject,
            **known,  # type: ignore[arg-type]
        )

    def accepted(self, erp_request_id: str, at: dt.datetime) -> JournalState:
        return replace(self, status=Status.PENDING, erp_request_id=erp_request_id, posted_at=at)

    def confirmed(
        self, document_number: str, fiscal_period: str | None, at: dt.datetime
    ) -> JournalState:
        return replace(
            self,
            status=Status.CONFIRMED,
            document_number=document_number,
            fiscal_period=fiscal_period,
            confirmed_at=at,
        )

    def rejected(self, code: str, message: str, at: dt.datetime) -> JournalState:
        """Refused by the ERP: the next attempt (a re-drive after the fix) uses a new key."""
        return replace(
            self,
            status=Status.REJECTED,
            error_code=code,
            error_message=message,
            rejected_at=at,
            attempt=self.attempt + 1,
        )


class _Envelope(TypedDict):
    event_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    source_system: str
    site: str
    correlation_id: str
    causation_id: str | None
    entity_key: str
    entity_version: int


def _envelope(state: JournalState, version_step: int, index: int, at: dt.datetime) -> _Envelope:
    return {
        # Deterministic per journal and attempt: a republish after a redelivery or a crash
        # falls into JetStream's duplicate window instead of doubling the event.
        "event_id": stage_msg_id(STAGE, f"{state.journal_id}\x1f{state.attempt}", index),
        "occurred_at": at,
        "recorded_at": dt.datetime.now(dt.UTC),
        "source_system": SOURCE_SYSTEM,
        "site": state.site,
        "correlation_id": state.correlation_id,
        "causation_id": state.event_id,
        "entity_key": state.journal_id,
        "entity_version": state.entity_version + version_step,
    }


def outputs(state: JournalState) -> list[Outgoing]:
    """The events that tell the suite where this journal stands (all of it, idempotently)."""
    events: list[Event] = []
    if state.posted_at is not None and state.erp_request_id is not None:
        events.append(
            JournalPosted(
                **_envelope(state, 1, 0, state.posted_at),
                journal_id=state.journal_id,
                erp_request_id=state.erp_request_id,
                posted_at=state.posted_at,
            )
        )
    if state.status is Status.CONFIRMED and state.confirmed_at and state.document_number:
        events.append(
            JournalConfirmed(
                **_envelope(state, 2, 1, state.confirmed_at),
                journal_id=state.journal_id,
                erp_document_number=state.document_number,
                fiscal_period=state.fiscal_period,
                confirmed_at=state.confirmed_at,
            )
        )
    if state.status is Status.REJECTED and state.rejected_at is not None:
        # The attempt was bumped on rejection; the event belongs to the attempt it ended.
        ended = replace(state, attempt=state.attempt - 1)
        events.append(
            JournalRejected(
                **_envelope(ended, 2, 2, state.rejected_at),
                journal_id=state.journal_id,
                error_code=state.error_code or "rejected",
                message=state.error_message or "",
                retryable=False,
                rejected_at=state.rejected_at,
            )
        )
    return [outgoing_for(event) for event in events]
