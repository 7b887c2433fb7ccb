"""Use case: create or update a FHIR R4 billing resource → its billing events, confirmed.

A create gets a server id derived from the content (a retried create is the same resource and
the same events); an update keeps the id in the URL, which must match the body's. Refused
resources are kept raw in the exception store and raised as :class:`FhirRejected`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from carebus_billing_adapter.adapters.fhir import mapping, values
from carebus_billing_adapter.adapters.fhir.decode import RESOURCE_TYPES, decode_resource
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.config import Settings
from carebus_contracts import Event
from carebus_contracts.checks import ContractViolation, all_checked
from carebus_shared.intake import Intake

CONTENT_TYPE = "application/fhir+json"
_MAPPERS: Final[dict[str, Callable[[Any, str, mapping.FhirContext], list[Event]]]] = {
    "ChargeItem": mapping.charge_item_events,
    "ClaimResponse": mapping.claim_response_events,
    "PaymentReconciliation": mapping.payment_reconciliation_events,
}


def source_for(resource_type: str) -> str:
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
                "not-supported", f"{resource_type} is not a billing resource carebus takes",
                reason="unsupported_resource", status=404,
            )  # fmt: skip
        try:
            return await self._handle(resource_type, body, url_id)
        except FhirRejected as rejected:
            first = rejected.issues[0]
            await self._intake.reject(
                raw=body,
                source=source_for(resource_type),
                category="contract",
                reason=first.reason,
                message=str(rejected),
                content_type=CONTENT_TYPE,
                site=self._settings.default_site,
                path=first.expression,
            )
            raise

    async def _handle(self, resource_type: str, body: bytes, url_id: str | None) -> FhirAccepted:
        resource = decode_resource(RESOURCE_TYPES[resource_type], body)
        if url_id is not None and resource.id is not None and resource.id != url_id:
            raise FhirRejected.one(
                "invalid", f"the body's id {resource.id!r} differs from the URL's {url_id!r}",
                f"{resource_type}.id", reason="id_mismatch", status=400,
            )  # fmt: skip
        resource_id = url_id or values.content_id(resource_type, resource)
        try:
            events = all_checked(_MAPPERS[resource_type](resource, resource_id, self._context()))
        except ContractViolation as exc:
            raise FhirRejected.one(
                "value", f"{exc.event_type}: {exc.reason} at {exc.path}",
                resource_type, reason="contract_violation",
            ) from None  # fmt: skip
        await self._intake.publish(source_for(resource_type), events)
        stored = msgspec.json.decode(body)
        stored["id"] = resource_id
        return FhirAccepted(
            resource_type=resource_type,
            resource_id=resource_id,
            created=url_id is None,
            event_ids=tuple(e.event_id for e in events),
            resource=stored,
        )
