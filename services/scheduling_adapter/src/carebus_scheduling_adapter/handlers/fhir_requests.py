"""FHIR R4 Appointment create / update and transaction / batch Bundles → canonical events.

A request is answered only after JetStream confirmed its events (201/200), or after its
rejection is kept in the exception store (4xx with an OperationOutcome).  A transaction is
all or nothing; a batch publishes its good entries and answers per entry, except that a
batch none of whose appointments is acceptable is refused as a whole (422).  A failure of
JetStream or PostgreSQL propagates: the route answers 503 and the sender retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.fhir.appointment import (
    FhirSource,
    appointment_to_event,
    id_and_version,
)
from carebus_scheduling_adapter.adapters.fhir.bundle import read_appointments
from carebus_scheduling_adapter.adapters.fhir.resources import Appointment
from carebus_scheduling_adapter.domain.inputs import CONTENT_FHIR, SOURCE_FHIR
from carebus_shared.exceptions.redrive import Reprocessed
from carebus_shared.fhir.bundle import answer_bundle
from carebus_shared.fhir.decoding import decode
from carebus_shared.fhir.outcome import (
    VALUE,
    FhirProblem,
    internal_error,
    operation_outcome,
    status_of,
)
from carebus_shared.http.guards import location
from carebus_shared.intake import Sink
from carebus_shared.logs import bind_event

CREATE: Final = "create"
UPDATE: Final = "update"
BUNDLE: Final = "bundle"
# Headers kept with a rejected request, so that a re-drive replays it the same way.
H_INTERACTION: Final = "Fhir-Interaction"
H_ID: Final = "Fhir-Id"
H_SOURCE: Final = "Carebus-Source-System"
H_SITE: Final = "Carebus-Site"


@dataclass(frozen=True)
class FhirReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    event_ids: tuple[str, ...] = ()
    problems: tuple[FhirProblem, ...] = ()


class FhirRequests:
    def __init__(
        self,
        sink: Sink,
        *,
        source_system: str,
        site: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._source_system = source_system
        self._site = site
        self._clock = clock

    async def create(
        self, raw: bytes, *, source_system: str | None = None, site: str | None = None
    ) -> FhirReply:
        return await self._single(CREATE, raw, None, self._source(source_system, site))

    async def update(
        self,
        fhir_id: str,
        raw: bytes,
        *,
        source_system: str | None = None,
        site: str | None = None,
    ) -> FhirReply:
        return await self._single(UPDATE, raw, fhir_id, self._source(source_system, site))

    async def bundle(
        self, raw: bytes, *, source_system: str | None = None, site: str | None = None
    ) -> FhirReply:
        source = self._source(source_system, site)

        async def keep(problems: Sequence[FhirProblem]) -> None:
            await self._keep(raw, BUNDLE, None, source, problems)

        async def publish(events: Sequence[Event]) -> None:
            await self._sink.publish(SOURCE_FHIR, events)

        answer = await answer_bundle(
            lambda: read_appointments(raw, source), publish=publish, keep=keep
        )
        return FhirReply(
            answer.status, answer.body, event_ids=answer.event_ids, problems=answer.problems
        )

    async def handle(self, raw: bytes, headers: Mapping[str, str]) -> Reprocessed:
        """Replay a kept request (re-drive) the way it first came in."""
        overrides = {"source_system": headers.get(H_SOURCE), "site": headers.get(H_SITE)}
        interaction = headers.get(H_INTERACTION, CREATE)
        if interaction == BUNDLE:
            reply = await self.bundle(raw, **overrides)
        elif interaction == UPDATE and headers.get(H_ID):
            reply = await self.update(headers[H_ID], raw, **overrides)
        else:
            reply = await self.create(raw, **overrides)
        if reply.problems:
            first = reply.problems[0]
            return Reprocessed(False, str(first), reply.event_ids, first.reason)
        return Reprocessed(True, "published " + ", ".join(reply.event_ids), reply.event_ids)

    async def refuse(
        self,
        raw: bytes,
        problem: FhirProblem,
        *,
        interaction: str,
        fhir_id: str | None = None,
        source_system: str | None = None,
        site: str | None = None,
    ) -> FhirReply:
        """Keep and refuse a request the route found unacceptable (e.g. its media type)."""
        source = self._source(source_system, site)
        return await self._refuse(raw, interaction, fhir_id, source, [problem])

    # -- internals ----------------------------------------------------------------------
    def _source(self, source_system: str | None, site: str | None) -> FhirSource:
        return FhirSource(
            source_system=source_system or self._source_system,
            site=site or self._site,
            received_at=self._clock(),
        )

    async def _single(
        self, interaction: str, raw: bytes, path_id: str | None, source: FhirSource
    ) -> FhirReply:
        try:
            appt = decode(raw, Appointment, "Appointment")
            if path_id is not None and appt.id is not None and appt.id != path_id:
                raise FhirProblem(
                    "id_mismatch", "the body's id is not the URL's",
                    code=VALUE, expression="Appointment.id", value=appt.id, status=400,
                )  # fmt: skip
            method = "PUT" if interaction == UPDATE else "POST"
            event = appointment_to_event(
                appt, raw=raw, method=method, fhir_id=path_id, source=source
            )
        except FhirProblem as problem:
            return await self._refuse(raw, interaction, path_id, source, [problem])
        except Exception as exc:
            return await self._refuse(raw, interaction, path_id, source, [internal_error(exc)])
        with bind_event(event.event_id, event.correlation_id):
            await self._sink.publish(SOURCE_FHIR, [event])
        fhir_id, version = id_and_version(event)
        body = _as_stored(raw, fhir_id, version)
        here = location("Appointment", fhir_id, "_history", str(version)).removeprefix("/")
        headers = {"Location": here, "ETag": f'W/"{version}"'}
        return FhirReply(201 if interaction == CREATE else 200, body, headers, (event.event_id,))

    async def _refuse(
        self,
        raw: bytes,
        interaction: str,
        fhir_id: str | None,
        source: FhirSource,
        problems: Sequence[FhirProblem],
    ) -> FhirReply:
        await self._keep(raw, interaction, fhir_id, source, problems)
        return FhirReply(status_of(problems), operation_outcome(problems), problems=tuple(problems))

    async def _keep(
        self,
        raw: bytes,
        interaction: str,
        fhir_id: str | None,
        source: FhirSource,
        problems: Sequence[FhirProblem],
    ) -> None:
        first = problems[0]
        headers = {H_INTERACTION: interaction, H_SOURCE: source.source_system}
        if source.site:
            headers[H_SITE] = source.site
        if fhir_id:
            headers[H_ID] = fhir_id
        await self._sink.reject(
            raw=raw,
            source=SOURCE_FHIR,
            category="contract" if first.status == 400 else "mapping",
            reason=first.reason,
            message="; ".join(str(p) for p in problems)[:2000],
            content_type=CONTENT_FHIR,
            site=source.site,
            path=first.expression,
            offending_value=first.value,
            headers=headers,
        )


def _as_stored(raw: bytes, fhir_id: str, version: str) -> dict[str, Any]:
    resource: dict[str, Any] = msgspec.json.decode(raw)
    resource["id"] = fhir_id
    resource["meta"] = {**resource.get("meta", {}), "versionId": version}
    return resource
