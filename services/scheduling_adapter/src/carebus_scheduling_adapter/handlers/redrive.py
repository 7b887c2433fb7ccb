"""Re-drive a rejected input kept by this adapter: the same path it first took, then resolve.

The kept raw input (or a corrected one a person supplies) goes through the HL7, FHIR or CSV
path it came in by, chosen by its content type.  Accepted → its events are published and the
record is marked ``redriven``; rejected again → the record stays open (a corrected input that
fails is kept as a record of its own, with its reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from carebus_scheduling_adapter.handlers.csv_import import CsvImport
from carebus_scheduling_adapter.handlers.fhir_requests import FhirRequests
from carebus_scheduling_adapter.handlers.hl7_messages import Hl7Messages
from carebus_scheduling_adapter.handlers.sink import (
    CONTENT_CSV,
    CONTENT_FHIR,
    CONTENT_HL7,
    Processed,
)
from carebus_shared.exceptions import store

REDRIVEN: Final = "redriven"
REJECTED: Final = "rejected"
NOT_FOUND: Final = "not_found"
NOT_OPEN: Final = "not_open"
NOT_OURS: Final = "not_redrivable_here"


@dataclass(frozen=True)
class RedriveResult:
    outcome: str
    record_id: int
    message: str
    event_ids: tuple[str, ...] = ()
    reason: str | None = None


class Redrive:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        *,
        stage: str,
        hl7: Hl7Messages,
        fhir: FhirRequests,
        csv: CsvImport,
    ) -> None:
        self._pool = pool
        self._stage = stage
        self._hl7 = hl7
        self._fhir = fhir
        self._csv = csv

    async def redrive(self, record_id: int, corrected: bytes | None, by: str) -> RedriveResult:
        async with self._pool().acquire() as conn:
            row = await store.get(conn, record_id)
        if row is None:
            return RedriveResult(NOT_FOUND, record_id, f"no exception record {record_id}")
        if row["status"] != "open":
            return RedriveResult(NOT_OPEN, record_id, f"record {record_id} is {row['status']}")
        content_type = row["content_type"]
        if row["stage"] != self._stage or row["raw"] is None or content_type not in (
            CONTENT_HL7, CONTENT_FHIR, CONTENT_CSV,
        ):  # fmt: skip
            return RedriveResult(
                NOT_OURS, record_id,
                f"record {record_id} is not an input kept by {self._stage}; "
                "stream messages are re-driven with `carebus exceptions redrive`",
            )  # fmt: skip
        raw: bytes = corrected if corrected else row["raw"]
        headers = store.decode_headers(row["headers"])
        processed = await self._process(content_type, raw, headers)
        if not processed.accepted:
            return RedriveResult(
                REJECTED, record_id, processed.message or "rejected again",
                processed.event_ids, processed.reason,
            )  # fmt: skip
        note = "published " + ", ".join(processed.event_ids)
        if corrected:
            note += " (from a corrected input)"
        async with self._pool().acquire() as conn:
            await store.resolve(conn, record_id, "redriven", by, note[:1000])
        return RedriveResult(REDRIVEN, record_id, note, processed.event_ids)

    async def _process(self, content_type: str, raw: bytes, headers: dict[str, str]) -> Processed:
        if content_type == CONTENT_HL7:
            return await self._hl7.handle(raw)
        if content_type == CONTENT_FHIR:
            return await self._fhir.handle(raw, headers)
        return await self._csv.handle(raw, headers)
