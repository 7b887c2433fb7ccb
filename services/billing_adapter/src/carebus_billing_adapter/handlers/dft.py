"""Use case: one HL7 v2 DFT^P03/P11 message → its billing events, published with confirmation.

Returns what the sender must be told (accepted, or rejected with an HL7 error); raises when the
events could not be published (JetStream down), in which case nothing may be acknowledged.
A rejected message is kept, raw, in the exception store with the reason and its location.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from carebus_billing_adapter.adapters.dft_events import dft_events
from carebus_billing_adapter.adapters.hl7_dft import map_dft
from carebus_billing_adapter.config import Settings
from carebus_contracts.checks import ContractViolation, all_checked
from carebus_shared.hl7.errors import DATA_TYPE_ERROR, Hl7Error, Hl7MappingError
from carebus_shared.hl7.message import Hl7Message, parse_message
from carebus_shared.intake import Intake

SOURCE = "hl7-dft"
CONTENT_TYPE = "x-application/hl7-v2+er7"


@dataclass(frozen=True, slots=True)
class DftAccepted:
    message: Hl7Message
    event_ids: tuple[str, ...]

    @property
    def events(self) -> int:
        return len(self.event_ids)


@dataclass(frozen=True, slots=True)
class DftRejected:
    inbound: Hl7Message | bytes  # the parsed message, or the raw bytes when it did not parse
    error: Hl7Error


DftOutcome = DftAccepted | DftRejected


class DftHandler:
    def __init__(self, intake: Intake, settings: Settings) -> None:
        self._intake = intake
        self._settings = settings
        self._tz = ZoneInfo(settings.default_timezone)

    async def handle(self, raw: bytes) -> DftOutcome:
        message: Hl7Message | None = None
        try:
            message = parse_message(raw)
            lines = map_dft(
                message, default_tz=self._tz, default_currency=self._settings.default_currency
            )
            events = all_checked(
                dft_events(
                    lines,
                    default_site=self._settings.default_site,
                    recorded_at=dt.datetime.now(dt.UTC),
                )
            )
        except ContractViolation as exc:
            error = Hl7MappingError(DATA_TYPE_ERROR, "FT1", str(exc), reason="contract_violation")
            return await self._reject(raw, message, error)
        except Hl7Error as exc:
            return await self._reject(raw, message, exc)
        await self._intake.publish(SOURCE, events)
        return DftAccepted(message, tuple(e.event_id for e in events))

    async def _reject(self, raw: bytes, message: Hl7Message | None, error: Hl7Error) -> DftRejected:
        await self._intake.reject(
            raw=raw,
            source=SOURCE,
            category="contract",
            reason=error.reason,
            message=str(error),
            content_type=CONTENT_TYPE,
            site=message.msh.value(4) if message is not None else None,
            path=str(error.location) if error.location else None,
            offending_value=error.value,
        )
        return DftRejected(message if message is not None else raw, error)
