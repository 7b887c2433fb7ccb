"""Use case: one X12 835 file → its billing events, all of them or none.

1. Parse and balance the whole file (``parse_835``); any issue rejects it as a whole, keeps the
   raw file in the exception store and publishes nothing.
2. A file whose digest was posted before (at any time) publishes nothing and says so.
3. Otherwise publish every event with confirmation, then remember the digest. A crash between
   the two is harmless: the re-delivered file republishes the same event ids, which JetStream's
   24 h duplicate window drops.

A file's events are made twice, never all held at once (docs/decisions/031): in step 1 each
is built and checked against its contract, then dropped; in step 3 they are built again a few
claims at a time and published with a window of unconfirmed publishes.
Raises when publishing fails (JetStream down): the caller must not report success.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from carebus_billing_adapter.adapters.remittance_files import PostedFile, RemittanceFiles
from carebus_billing_adapter.adapters.x12 import RemittanceRejected, parse_835
from carebus_billing_adapter.config import Settings
from carebus_billing_adapter.domain.remittance import Remittance
from carebus_billing_adapter.domain.remittance_events import (
    RemittanceContext,
    remittance_event_chunks,
)
from carebus_billing_adapter.domain.remittance_rejection import (
    Issue,
    Rejection,
    RejectionReason,
)
from carebus_contracts.checks import ContractViolation, checked
from carebus_shared.intake import Intake

SOURCE = "x12-835"
CONTENT_TYPE = "application/edi-x12"
# Bigger files are parsed in a worker thread so the event loop keeps answering (MLLP, HTTP).
_THREAD_PARSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RemittancePosted:
    file: PostedFile
    duplicate: bool  # True: posted before, nothing was published this time
    event_ids: tuple[str, ...] = ()  # what was published this time


@dataclass(frozen=True, slots=True)
class RemittanceRefused:
    rejection: Rejection


RemittanceOutcome = RemittancePosted | RemittanceRefused


def _parse(raw: bytes, context: RemittanceContext) -> tuple[list[Remittance], int]:
    """The file's remittances and how many events they make, every one checked."""
    remittances = parse_835(raw)
    count = 0
    try:
        for remittance in remittances:
            for chunk in remittance_event_chunks(remittance, context):
                for event in chunk:
                    checked(event)
                count += len(chunk)
    except ContractViolation as exc:
        issue = Issue(
            reason=RejectionReason.CONTRACT_VIOLATION,
            message=f"{exc.event_type}: {exc.reason} at {exc.path}",
        )
        raise RemittanceRejected(
            Rejection(file_digest=remittances[0].file_digest, issues=[issue])
        ) from None
    return remittances, count


class RemittanceHandler:
    def __init__(self, intake: Intake, files: RemittanceFiles, settings: Settings) -> None:
        self._intake = intake
        self._files = files
        self._settings = settings
        self._tz = ZoneInfo(settings.default_timezone)
        # Big files take turns: one file's objects in memory at a time, and a file resent
        # while it is being posted waits, then finds it posted (docs/decisions/031).
        self._big_files = asyncio.Semaphore(1)

    def _context(self) -> RemittanceContext:
        return RemittanceContext(
            site=self._settings.default_site,
            source_system=self._settings.remittance_source_system,
            timezone=self._tz,
            recorded_at=dt.datetime.now(dt.UTC),
            currency=self._settings.default_currency,
        )

    async def handle(self, raw: bytes, origin: str) -> RemittanceOutcome:
        if len(raw) <= _THREAD_PARSE_BYTES:
            return await self._handle(raw, origin)
        async with self._big_files:
            return await self._handle(raw, origin)

    async def _handle(self, raw: bytes, origin: str) -> RemittanceOutcome:
        context = self._context()
        try:
            if len(raw) > _THREAD_PARSE_BYTES:
                remittances, count = await asyncio.to_thread(_parse, raw, context)
            else:
                remittances, count = _parse(raw, context)
        except RemittanceRejected as rejected:
            await self._reject(raw, rejected)
            return RemittanceRefused(rejected.rejection)
        digest = remittances[0].file_digest
        earlier = await self._files.seen(digest)
        if earlier is not None:
            return RemittancePosted(earlier, duplicate=True)
        event_ids: list[str] = []
        stream = self._intake.stream(SOURCE)
        for remittance in remittances:
            for chunk in remittance_event_chunks(remittance, context):
                event_ids += (e.event_id for e in chunk)
                await stream.publish(chunk)
        await stream.publish((), inputs=1)
        await stream.confirmed()
        posted = PostedFile(
            digest=digest,
            transactions=len(remittances),
            claims=sum(len(r.claims) for r in remittances),
            payment_total_minor=sum(r.payment.amount_minor for r in remittances),
            events=count,
        )
        await self._files.remember(posted, origin)
        return RemittancePosted(posted, duplicate=False, event_ids=tuple(event_ids))

    async def _reject(self, raw: bytes, rejected: RemittanceRejected) -> None:
        first = rejected.rejection.issues[0]
        await self._intake.reject(
            raw=raw,
            source=SOURCE,
            category="contract",
            reason=str(first.reason),
            message=str(rejected),
            content_type=CONTENT_TYPE,
            site=self._settings.default_site,
            path=first.element or first.segment_tag,
            offending_value=first.patient_control_number,
        )
