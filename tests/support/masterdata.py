"""Builders and probes for the master-data validator tests (real NATS and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from carebus_contracts import decode_message, encode, headers_for, subject_for
from carebus_contracts.billing import (
    AdjustmentPosted,
    CarcGroup,
    Charge,
    ChargePosted,
    ClaimAdjudicatedV2,
    ClaimStatus,
    ClaimTotals,
    PaymentPosted,
)
from carebus_contracts.envelope import Event, Money
from carebus_contracts.scheduling import (
    Appointment,
    AppointmentBooked,
    AppointmentRequest,
    AppointmentRequestCancelled,
    AppointmentRequested,
    AppointmentRequestStatus,
    AppointmentStatus,
)

CHICAGO = dt.timezone(dt.timedelta(hours=-6))
RECORDED = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
# Valid NPIs (check digit per the CMS Luhn rule with prefix 80840).
VALID_NPIS = ("1234567893", "1689872012", "1245319599", "1003000126", "1497758544")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def _envelope(
    event_id: str, key: str, occurred_at: dt.datetime, source: str, site: str, version: int = 1
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "recorded_at": RECORDED,
        "source_system": source,
        "site": site,
        "correlation_id": f"corr-{key}",
        "entity_key": key,
        "entity_version": version,
    }


def appointment(
    *,
    site: str,
    source: str,
    appointment_id: str,
    version: int = 1,
    on: dt.date = dt.date(2025, 3, 10),
    provider_code: str | None = None,
    location_code: str | None = None,
    department_code: str | None = None,
    service_code: str | None = None,
) -> AppointmentBooked:
    start = dt.datetime.combine(on, dt.time(10, 0), CHICAGO)
    occurred = start - dt.timedelta(days=3)
    return AppointmentBooked(
        **_envelope(
            f"evt-{appointment_id}-{version}", appointment_id, occurred, source, site, version
        ),
        appointment=Appointment(
            appointment_id=appointment_id,
            patient_ref="MRN-1",
            provider_code=provider_code,
            location_code=location_code,
            department_code=department_code,
            service_code=service_code,
            slot_start=start,
            slot_end=start + dt.timedelta(minutes=30),
            status=AppointmentStatus.BOOKED,
        ),
    )


def appointment_request(
    *,
    site: str,
    source: str,
    appointment_id: str,
    requested_from: dt.date | None = None,
    occurred_on: dt.date = dt.date(2025, 3, 7),
    cancelled: bool = False,
    provider_code: str | None = None,
    location_code: str | None = None,
) -> AppointmentRequested | AppointmentRequestCancelled:
    """A request (no slot): proposed, or cancelled without a time."""
    status = AppointmentRequestStatus.CANCELLED if cancelled else AppointmentRequestStatus.PROPOSED
    kind = AppointmentRequestCancelled if cancelled else AppointmentRequested
    occurred = dt.datetime.combine(occurred_on, dt.time(23, 30), CHICAGO)
    return kind(
        **_envelope(f"evt-{appointment_id}-request", appointment_id, occurred, source, site),
        request=AppointmentRequest(
            appointment_id=appointment_id,
            patient_ref="MRN-1",
            provider_code=provider_code,
            location_code=location_code,
            status=status,
            requested_from=requested_from,
        ),
    )


def charge(
    *,
    site: str,
    source: str,
    charge_id: str,
    service_code: str,
    payer_code: str | None = None,
    on: dt.date = dt.date(2025, 3, 10),
    provider_code: str | None = None,
    encounter_id: str | None = None,
    location_code: str | None = None,
) -> ChargePosted:
    occurred = dt.datetime.combine(on, dt.time(9, 0), CHICAGO)
    return ChargePosted(
        **_envelope(f"evt-{charge_id}", charge_id, occurred, source, site),
        charge=Charge(
            charge_id=charge_id,
            patient_ref="MRN-1",
            encounter_id=encounter_id,
            location_code=location_code,
            service_code=service_code,
            units=1,
            amount=Money(amount_minor=12500, currency="USD"),
            service_date=on,
            performing_provider_code=provider_code,
            payer_code=payer_code,
        ),
    )


def remittance(
    *,
    site: str,
    source: str,
    key: str,
    payer_code: str,
    claim_id: str | None,
    payee_npi: str | None = None,
    on: dt.date = dt.date(2025, 4, 2),
) -> list[Event]:
    """What an 835 claim payment becomes (its adjudication, payment and a CO-45 adjustment),
    or with ``claim_id`` None a provider-level (PLB) adjustment alone."""
    occurred = dt.datetime.combine(on, dt.time(), CHICAGO)
    usd = "USD"
    if claim_id is None:
        return [
            AdjustmentPosted(
                **_envelope(f"evt-{key}-plb", f"{key}-plb", occurred, source, site),
                adjustment_id=f"{key}-plb",
                payer_code=payer_code,
                group_code=CarcGroup.OTHER,
                reason_code="L6",
                amount=Money(amount_minor=-300, currency=usd),
                payee_npi=payee_npi,
            )
        ]
    return [
        ClaimAdjudicatedV2(
            **_envelope(f"evt-{key}-claim", claim_id, occurred, source, site),
            claim_id=claim_id,
            payer_code=payer_code,
            status=ClaimStatus.PAID,
            totals=ClaimTotals(
                billed=Money(amount_minor=12500, currency=usd),
                paid=Money(amount_minor=9000, currency=usd),
            ),
            adjudicated_on=on,
            payee_npi=payee_npi,
        ),
        PaymentPosted(
            **_envelope(f"evt-{key}-pay", f"{key}-pay", occurred, source, site),
            payment_id=f"{key}-pay",
            payer_code=payer_code,
            claim_id=claim_id,
            amount=Money(amount_minor=9000, currency=usd),
            received_on=on,
            payee_npi=payee_npi,
        ),
        AdjustmentPosted(
            **_envelope(f"evt-{key}-co45", f"{key}-co45", occurred, source, site),
            adjustment_id=f"{key}-co45",
            claim_id=claim_id,
            payer_code=payer_code,
            group_code=CarcGroup.CONTRACTUAL,
            reason_code="45",
            amount=Money(amount_minor=3500, currency=usd),
            payee_npi=payee_npi,
        ),
    ]


async def publish(js: JetStreamContext, events: list[Event]) -> None:
    for event in events:
        await js.publish(subject_for(event), encode(event), headers=headers_for(event))


class Collector:
    """An ephemeral pull consumer on one subject filter, gathering decoded events."""

    def __init__(self, js: JetStreamContext, stream: str, subject: str) -> None:
        self._js, self._stream, self._subject = js, stream, subject
        self.events: list[Event] = []
        self._sub: Any = None

    async def __aenter__(self) -> Collector:
        self._sub = await self._js.pull_subscribe(
            self._subject,
            stream=self._stream,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=60
            ),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._sub.unsubscribe()

    async def drain(self, wait_s: float = 0.2) -> list[Event]:
        try:
            msgs = await self._sub.fetch(500, timeout=wait_s)
        except TimeoutError:
            msgs = []
        self.events += [decode_message(m.subject, m.data, m.headers) for m in msgs]
        return self.events

    async def until(self, count: int, timeout_s: float = 15.0) -> list[Event]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.events) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{self._subject}: {len(self.events)} of {count} events after {timeout_s}s"
                )
            await self.drain()
        return self.events


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 15.0
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)
