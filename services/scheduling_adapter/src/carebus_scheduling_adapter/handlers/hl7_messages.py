"""HL7 v2 SIU (and ADT with SCH) → canonical event on JetStream, or a kept rejection.

The MLLP listener calls :meth:`Hl7Messages.mllp_handler`: parse, map, publish confirmed,
then AA.  Event id: ``hl7:<MSH-3>:<MSH-4>:<MSH-10>:<digest>``, the digest covering MSH-9 and
the segments after MSH.  A retransmission (same control id and content, perhaps with a new
MSH-7) is de-duplicated by JetStream; a sender that reuses a control id for a different
message (a counter reset on restart) does not get the new message dropped as a "duplicate".

A message that cannot be parsed or mapped is kept (raw bytes, reason, location) in the
exception store *before* its AE/AR goes out; if the store or JetStream is down nothing is
answered, so the sender retries and the retry is de-duplicated by event id.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from carebus_contracts import Event
from carebus_contracts.checks import ContractViolation, checked
from carebus_scheduling_adapter.adapters.hl7_siu import map_siu
from carebus_scheduling_adapter.adapters.hl7_siu_contract import event_id_for, to_contract
from carebus_scheduling_adapter.domain.inputs import CONTENT_HL7, SOURCE_HL7
from carebus_shared.exceptions.redrive import Reprocessed
from carebus_shared.hl7 import Hl7Error, Hl7MappingError, Hl7Message, Hl7ParseError, parse_message
from carebus_shared.hl7.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
)
from carebus_shared.intake import Sink
from carebus_shared.logs import bind_event
from carebus_shared.mllp import MllpHandler, hl7_handler

log = logging.getLogger(__name__)

# Where in the message a contract field comes from, to point the sender at it.
_CONTRACT_FIELD_SOURCE: Final = {
    "appointment_id": "SCH-2",
    "patient_ref": "PID-3",
    "slot_start": "SCH-11",
    "slot_end": "SCH-11",
    "source_system": "MSH-3",
    "site": "MSH-4",
    "event_id": "MSH-10",
}


class Hl7Messages:
    def __init__(
        self,
        sink: Sink,
        *,
        default_tz: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._tz = default_tz
        self._clock = clock

    def mllp_handler(self) -> MllpHandler:
        return hl7_handler(self.process, self.reject)

    async def process(self, message: Hl7Message) -> str:
        """Publish the message's event and return its id; raises Hl7Error if unmappable."""
        event = self._event(message)
        with bind_event(event.event_id, event.correlation_id):
            await self._sink.publish(SOURCE_HL7, [event])
        return event.event_id

    def _event(self, message: Hl7Message) -> Event:
        try:
            appt = map_siu(message, default_tz=self._tz)
            event_id = f"{event_id_for(appt)}:{_body_digest(message)}"
            return checked(to_contract(appt, recorded_at=self._clock(), event_id=event_id))
        except Hl7Error:
            raise
        except ContractViolation as exc:
            field = exc.path.rsplit(".", 1)[-1]
            code = REQUIRED_FIELD_MISSING if "length" in exc.reason else DATA_TYPE_ERROR
            where = _CONTRACT_FIELD_SOURCE.get(field, "MSH")
            raise Hl7MappingError(code, where, f"{field}: {exc.reason}") from exc
        except Exception as exc:
            # A mapping bug must not stall the feed (no ACK = the sender re-sends it forever):
            # the message is kept with AE, for a re-drive once the bug is fixed.
            log.exception("HL7 %s could not be mapped (internal error)", message.control_id)
            raise Hl7MappingError(
                APPLICATION_INTERNAL_ERROR, "MSH", f"internal error: {type(exc).__name__}",
                reason="internal_error",
            ) from exc  # fmt: skip

    async def reject(self, raw: bytes, message: Hl7Message | None, error: Hl7Error) -> None:
        await self._sink.reject(
            raw=raw,
            source=SOURCE_HL7,
            category="contract" if isinstance(error, Hl7ParseError) else "mapping",
            reason=error.reason,
            message=str(error),
            content_type=CONTENT_HL7,
            site=message.msh.value(4) if message is not None else None,
            path=str(error.location) if error.location is not None else None,
            offending_value=error.value,
        )

    async def handle(self, raw: bytes) -> Reprocessed:
        """The MLLP path without the ACK: for re-driving a stored (or corrected) message."""
        message: Hl7Message | None = None
        try:
            message = parse_message(raw)
            event_id = await self.process(message)
        except Hl7Error as exc:
            await self.reject(raw, message, exc)
            return Reprocessed(False, str(exc), reason=exc.reason)
        return Reprocessed(True, f"published {event_id}", (event_id,))


def _body_digest(message: Hl7Message) -> str:
    body = message.text.split("\r", 1)[1] if "\r" in message.text else ""
    content = f"{message.msh.raw_field(9)}\r{body}"
    return hashlib.blake2b(content.encode(), digest_size=6).hexdigest()
