"""Use case: FHIR R4 billing resources → their billing events, confirmed.

One by one (create or update of a ChargeItem, ClaimResponse or PaymentReconciliation) or in
a transaction or batch Bundle (the shared ``carebus_shared.fhir.bundle`` rules: a transaction
all or nothing, a batch per entry). A create gets a server id derived from the content (a
retried create is the same resource and the same events); an update keeps the id in the
URL, which must match the body's. Refused input is kept raw in the exception store first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from carebus_billing_adapter.adapters.fhir import mapping
from carebus_billing_adapter.adapters.fhir.bundle import read_billing_bundle
from carebus_billing_adapter.adapters.fhir.decode import RESOURCE_TYPES
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.config import Settings
from carebus_contracts import Event
from carebus_shared.fhir.bundle import BundleAnswer, answer_bundle
from carebus_shared.fhir.outcome import FhirProblem
from carebus_shared.intake import Intake

CONTENT_TYPE = "application/fhir+json"
BUNDLE = "Bundle"


def source_for(resource_type: str) -> str:
    """The source an input is counted and kept under: ``fhir-<type>``, ``fhir-Bundle``."""
    return f"fhir-{resource_type}"


@dataclass(frozen=True, slots=True)
class FhirAccepted:
    resource_type: str
    resource_id: str
    created: bool
    event_ids: tuple[str, ...]
    resource: dict[str, Any]  # the stored form: the body with the server id

    @property
    def events(self) -> int:
        return len(self.event_ids)


class FhirHandler:
    def __init__(self, intake: Intake, settings: Settings) -> None:
        self._intake = intake
        self._settings = settings
        self._tz = ZoneInfo(settings.default_timezone)

    def _context(self) -> mapping.FhirContext:
        return mapping.FhirContext(
            site=self._settings.default_site,
            source_system=self._settings.fhir_source_system,
            timezone=self._tz,
            currency=self._settings.default_currency,
            recorded_at=dt.datetime.now(dt.UTC),
        )

    async def handle(self, resource_type: str, body: bytes, url_id: str | None) -> FhirAccepted:
        """Create (``url_id`` None) or update; raises FhirRejected after recording the input."""
        if resource_type not in RESOURCE_TYPES:
            raise FhirRejected.one(
                "not-supported",
                f"the resource type in the path is not one carebus takes "
                f"({', '.join(sorted(RESOURCE_TYPES))})",
                reason="unsupported_resource", status=404,
            )  # fmt: skip
        source = source_for(resource_type)
        try:
            resource_id, events = mapping.resource_events(
                resource_type, body, url_id, self._context()
            )
        except FhirRejected as rejected:
            await self._keep(body, source, rejected.issues)
            raise
        await self._intake.publish(source, events)
        stored = msgspec.json.decode(body)
        stored["id"] = resource_id
        return FhirAccepted(
            resource_type=resource_type,
            resource_id=resource_id,
            created=url_id is None,
            event_ids=tuple(e.event_id for e in events),
            resource=stored,
        )

    async def bundle(self, raw: bytes) -> BundleAnswer:
        """A transaction or batch Bundle: answered 200 with a ``<type>-response``, or refused
        (4xx OperationOutcome) after it was kept."""
        source = source_for(BUNDLE)
        ctx = self._context()

        async def publish(events: Sequence[Event]) -> None:
            await self._intake.publish(source, events)

        async def keep(problems: Sequence[FhirProblem]) -> None:
            await self._keep(raw, source, problems)

        return await answer_bundle(
            lambda: read_billing_bundle(raw, ctx), publish=publish, keep=keep
        )

    async def _keep(self, raw: bytes, source: str, problems: Sequence[FhirProblem]) -> None:
        first = problems[0]
        await self._intake.reject(
            raw=raw,
            source=source,
            category="contract",
            reason=first.reason,
            message="; ".join(str(p) for p in problems)[:2000],
            content_type=CONTENT_TYPE,
            site=self._settings.default_site,
            path=first.expression,
            offending_value=first.value,
        )
