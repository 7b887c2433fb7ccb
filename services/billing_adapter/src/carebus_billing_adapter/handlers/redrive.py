"""Use case: re-drive a rejected input kept in the exception store, as stored or corrected.

The input goes through the same use case it first failed in (DFT, 835 or FHIR, told apart by
the record's ``source``). When it is accepted the record is resolved as ``redriven``; when it
is rejected again, the new rejection is recorded (a corrected input is a new record) and the
original stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import msgspec

from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.config import STAGE
from carebus_billing_adapter.handlers import dft, fhir, remittance
from carebus_shared.exceptions import store

_FHIR_PREFIX = "fhir-"


class RedriveRefused(Exception):
    """The record cannot be re-driven here; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Redriven:
    record_id: int
    source: str
    accepted: bool
    outcome: dft.DftOutcome | remittance.RemittanceOutcome | fhir.FhirAccepted | FhirRejected


class _BodyId(msgspec.Struct):
    id: str | None = None


def _fhir_id(body: bytes) -> str | None:
    try:
        return msgspec.json.decode(body, type=_BodyId).id
    except msgspec.DecodeError:
        return None  # the FHIR use case reports the bad body


class RedriveHandler:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        dfts: dft.DftHandler,
        remittances: remittance.RemittanceHandler,
        fhirs: fhir.FhirHandler,
    ) -> None:
        self._pool = pool
        self._dft = dfts
        self._remittance = remittances
        self._fhir = fhirs

    async def redrive(self, record_id: int, corrected: bytes | None, by: str) -> Redriven:
        async with self._pool().acquire() as conn:
            record = await store.get(conn, record_id)
        if record is None or record["stage"] != STAGE:
            raise RedriveRefused(404, f"no billing adapter exception record {record_id}")
        if record["status"] != "open":
            raise RedriveRefused(409, f"record {record_id} is already {record['status']}")
        raw = corrected if corrected else record["raw"]
        if not raw:
            raise RedriveRefused(409, f"record {record_id} holds no raw input to re-drive")
        source = str(record["source"])
        redriven = await self._run(record_id, source, bytes(raw))
        if redriven.accepted:
            note = "corrected input accepted" if corrected else "stored input accepted"
            async with self._pool().acquire() as conn:
                await store.resolve(conn, record_id, "redriven", by, note)
        return redriven

    async def _run(self, record_id: int, source: str, raw: bytes) -> Redriven:
        if source == dft.SOURCE:
            outcome_dft = await self._dft.handle(raw)
            accepted = isinstance(outcome_dft, dft.DftAccepted)
            return Redriven(record_id, source, accepted, outcome_dft)
        if source == remittance.SOURCE:
            outcome_835 = await self._remittance.handle(raw, origin="redrive")
            accepted = isinstance(outcome_835, remittance.RemittancePosted)
            return Redriven(record_id, source, accepted, outcome_835)
        if source.startswith(_FHIR_PREFIX):
            resource_type = source.removeprefix(_FHIR_PREFIX)
            try:
                created = await self._fhir.handle(resource_type, raw, _fhir_id(raw))
            except FhirRejected as rejected:
                return Redriven(record_id, source, False, rejected)
            return Redriven(record_id, source, True, created)
        raise RedriveRefused(409, f"record {record_id} came from {source!r}, not a billing input")
