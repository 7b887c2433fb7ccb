"""Where inputs go: canonical events to JetStream, rejected inputs to the exception store.

``carebus_shared.intake.Intake`` is the implementation; handlers depend on this protocol
only, so a unit test can hand them a recording fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import asyncpg
import nats.errors
from nats.js import api

from carebus_contracts import Event
from carebus_shared.jetstream.publish import PublishFailed

SOURCE_HL7: Final = "hl7"
SOURCE_FHIR: Final = "fhir"
SOURCE_CSV: Final = "csv"

CONTENT_HL7: Final = "application/hl7-v2"
CONTENT_FHIR: Final = "application/fhir+json"
CONTENT_CSV: Final = "text/csv"

# Failures of JetStream or PostgreSQL: the sender must retry (no ACK, HTTP 503), the input
# is neither accepted nor rejected.  RuntimeError: the runtime's "not connected yet".
TRANSIENT_ERRORS: Final = (
    PublishFailed,
    nats.errors.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    RuntimeError,
)


class Sink(Protocol):
    async def publish(
        self, source: str, events: Sequence[Event], *, inputs: int = 1
    ) -> list[api.PubAck]: ...

    async def reject(
        self,
        *,
        raw: bytes,
        source: str,
        category: str,
        reason: str,
        message: str,
        content_type: str,
        site: str | None = None,
        path: str | None = None,
        offending_value: str | None = None,
        event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Processed:
    """What re-processing one stored input came to (for re-drive)."""

    accepted: bool
    event_ids: tuple[str, ...] = ()
    reason: str | None = None
    message: str | None = None
