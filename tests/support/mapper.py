"""Helpers for the mapper tests: validated-event builders, hypothesis strategies, and an
accounting oracle written from the README's policy, independently of the rules engine."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import strategies as st

from carebus_contracts import billing as b
from carebus_contracts import scheduling as s
from carebus_contracts import validated as v
from carebus_contracts.envelope import Event, Money
from carebus_contracts.erp import JournalEntryRequested, Side
from carebus_contracts.masterdata import PayerClass
from carebus_mapper.adapters.rule_files import default_rules_dir
from carebus_mapper.domain.rules import RuleSet

TZ = dt.timezone(dt.timedelta(hours=-6))
AT = dt.datetime(2025, 3, 10, 9, 15, tzinfo=TZ)
SITE = "SITE01"

ENRICHMENT = v.Enrichment(
    provider_id="P-1",
    provider_npi="1234567893",
    location_id="L-1",
    department_id="D-CARDIO",
    service_code="99213",
    payer_id="PY-BCBS",
    cost_centre="CC-100",
    payer_class=PayerClass.COMMERCIAL,
    place_of_service="11",
    time_zone="America/Chicago",
)

WRAPPERS: dict[type[Event], Callable[..., Event]] = dict(v.VALIDATED_FOR)

# Each appointment event type with the status its appointment has after it.
APPOINTMENT_KINDS: dict[type[Event], s.AppointmentStatus] = {
    s.AppointmentBooked: s.AppointmentStatus.BOOKED,
    s.AppointmentRescheduled: s.AppointmentStatus.BOOKED,
    s.AppointmentModified: s.AppointmentStatus.BOOKED,
    s.AppointmentCheckedIn: s.AppointmentStatus.CHECKED_IN,
    s.AppointmentCancelled: s.AppointmentStatus.CANCELLED,
    s.AppointmentNoShow: s.AppointmentStatus.NO_SHOW,
    s.AppointmentCompleted: s.AppointmentStatus.COMPLETED,
}
# Each appointment request event type (no slot) with its request's status.
REQUEST_KINDS: dict[type[Event], s.AppointmentRequestStatus] = {
    s.AppointmentRequested: s.AppointmentRequestStatus.WAITLIST,
    s.AppointmentRequestCancelled: s.AppointmentRequestStatus.CANCELLED,
}
# The state an appointment is in after each event type: what fencing records.
STATE_AFTER: dict[type[Event], str] = {
    **{kind: status.value for kind, status in APPOINTMENT_KINDS.items()},
    s.AppointmentRequested: "requested",
    s.AppointmentRequestCancelled: "cancelled",
}


def envelope(event_id: str, key: str, version: int = 1, site: str = SITE) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": AT,
        "recorded_at": AT,
        "source_system": "test-source",
        "site": site,
        "correlation_id": f"corr-{key}",
        "entity_key": key,
        "entity_version": version,
    }


def validate(
    original: Event, enrichment: v.Enrichment = ENRICHMENT, validated_id: str | None = None
) -> v.Validated[Any]:
    """Wrap ``original`` as the validator would."""
    wrapper = WRAPPERS[type(original)]
    event = wrapper(
        event_id=validated_id or f"val-{original.event_id}",
        occurred_at=original.occurred_at,
        recorded_at=original.recorded_at,
        source_system="carebus-masterdata-validator",
        site=original.site,
        correlation_id=original.correlation_id,
        causation_id=original.event_id,
        entity_key=original.entity_key,
        entity_version=original.entity_version,
        original=original,
        enrichment=enrichment,
    )
    assert isinstance(event, v.Validated)
    return event


def usd(minor: int) -> Money:
    return Money(amount_minor=minor, currency="USD")


def appointment(
    kind: type[Event],
    key: str = "A1",
    version: int = 1,
    event_id: str | None = None,
    site: str = SITE,
    service: str = "99213",
) -> Event:
    env = envelope(event_id or f"{key}-v{version}", key, version, site)
    coded: dict[str, Any] = {
        "appointment_id": key,
        "patient_ref": "MRN-1",
        "provider_code": "DRSMITH",
        "location_code": "CLINIC-N",
        "department_code": "CARDIO",
        "service_code": service,
    }
    if kind in REQUEST_KINDS:
        request = s.AppointmentRequest(
            **coded, status=REQUEST_KINDS[kind], requested_from=dt.date(2025, 3, 17)
        )
        return kind(**env, request=request)
    body = s.Appointment(
        **coded,
        slot_start=dt.datetime(2025, 3, 14, 23, 30, tzinfo=TZ),
        slot_end=dt.datetime(2025, 3, 14, 23, 59, tzinfo=TZ),
        status=APPOINTMENT_KINDS[kind],
    )
    return kind(**env, appointment=body)


def charge(
    charge_id: str = "CH-1",
    amount: int = 12500,
    payer_code: str | None = "BCBS",
    *,
    reversed_: bool = False,
    version: int = 1,
    event_id: str | None = None,
    site: str = SITE,
) -> Event:
    body = b.Charge(
        charge_id=charge_id,
        patient_ref="MRN-1",
        service_code="99213",
        units=1,
        amount=usd(amount),
        service_date=dt.date(2025, 3, 14),
        payer_code=payer_code,
    )
    env = envelope(
        event_id or f"{charge_id}-{'rev' if reversed_ else 'post'}", charge_id, version, site
    )
    if reversed_:
        return b.ChargeReversed(**env, charge=body, reversed_charge_id=charge_id)
    return b.ChargePosted(**env, charge=body)


def payment(
    payment_id: str = "PAY-1", amount: int = 8000, payer_code: str | None = "BCBS"
) -> Event:
    return b.PaymentPosted(
        **envelope(payment_id, payment_id),
        payment_id=payment_id,
        payer_code=payer_code,
        amount=usd(amount),
        received_on=dt.date(2025, 4, 2),
    )


def adjustment(
    adjustment_id: str = "ADJ-1",
    amount: int = 2500,
    group: b.CarcGroup = b.CarcGroup.CONTRACTUAL,
    reason: str = "45",
    payer_code: str | None = "BCBS",
    scope: str | None = None,
) -> Event:
    extra: dict[str, Any] = {}
    if scope is not None and hasattr(b, "AdjustmentScope"):
        extra["scope"] = b.AdjustmentScope(scope)
    return b.AdjustmentPosted(
        **envelope(adjustment_id, adjustment_id),
        adjustment_id=adjustment_id,
        payer_code=payer_code,
        group_code=group,
        reason_code=reason,
        amount=usd(amount),
        **extra,
    )


def claim(
    claim_id: str = "CLM-1", status: b.ClaimStatus = b.ClaimStatus.PAID, version: int = 1
) -> Event:
    return b.ClaimAdjudicatedV2(
        **envelope(f"{claim_id}-v{version}", claim_id, version),
        claim_id=claim_id,
        payer_code="BCBS",
        status=status,
        totals=b.ClaimTotals(billed=usd(12500), paid=usd(8000)),
        adjudicated_on=dt.date(2025, 4, 1),
    )


# -- hypothesis -------------------------------------------------------------------------------

amounts = st.integers(min_value=-(10**10), max_value=10**10)
positive = st.integers(min_value=1, max_value=10**10)
payer_classes = st.one_of(st.none(), st.sampled_from(list(PayerClass)))
payer_codes = st.one_of(st.none(), st.just("BCBS"))
SCOPES = ["claim", "service_line", "provider"] if hasattr(b, "AdjustmentScope") else []


@st.composite
def enrichments(draw: st.DrawFn) -> v.Enrichment:
    return v.Enrichment(
        provider_id=draw(st.one_of(st.none(), st.just("P-1"))),
        location_id="L-1",
        department_id=draw(st.sampled_from(["D-CARDIO", "D-ORTHO"])),
        service_code=draw(st.sampled_from(["99213", "99215", "93000", "12345"])),
        payer_id=draw(st.one_of(st.none(), st.just("PY-BCBS"))),
        cost_centre=draw(st.sampled_from(["CC-100", "CC-200"])),
        payer_class=draw(payer_classes),
        time_zone=draw(st.sampled_from(["America/Chicago", "Europe/Paris", None])),
    )


@st.composite
def billing_originals(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["charge", "reversal", "payment", "adjustment", "claim"]))
    ident = draw(st.uuids()).hex[:12]
    if kind in ("charge", "reversal"):
        return charge(ident, draw(positive), draw(payer_codes), reversed_=kind == "reversal")
    if kind == "payment":
        return payment(ident, draw(amounts), draw(payer_codes))
    if kind == "adjustment":
        return adjustment(
            ident,
            draw(amounts),
            draw(st.sampled_from(list(b.CarcGroup))),
            draw(st.sampled_from(["45", "1", "2", "L6", "WO"])),
            draw(payer_codes),
            draw(st.one_of(st.none(), st.sampled_from(SCOPES))) if SCOPES else None,
        )
    return claim(ident, draw(st.sampled_from(list(b.ClaimStatus))))


appointment_kinds = st.sampled_from([*APPOINTMENT_KINDS, *REQUEST_KINDS])
previous_statuses = st.sampled_from(
    ["none", "requested", "booked", "checked_in", "cancelled", "no_show", "completed"]
)

# -- the oracle -------------------------------------------------------------------------------

ACTIVE = {"booked", "checked_in"}
COUNT_ACCOUNT = {
    "appointment.booked": "9000",
    "appointment.rescheduled": "9030",
    "appointment.cancelled": "9010",
    "appointment.no_show": "9020",
    "appointment.completed": "9040",
}
CLAIM_ACCOUNT = {"paid": "9300", "denied": "9310", "reversed": "9320"}
Sums = dict[tuple[str, str], int]


def _move(
    sums: defaultdict[tuple[str, str], int], debit: str, credit: str, n: int, unit: str
) -> None:
    sums[(debit, unit)] += n
    sums[(credit, unit)] -= n


def expected_sums(event: v.Validated[Any], rules: RuleSet, previous: str | None) -> Sums:
    """Per-account signed sums (debit +, credit −) the accounting policy demands, computed
    straight from the event — without the rules engine."""
    sums: defaultdict[tuple[str, str], int] = defaultdict(int)
    o = event.original
    pc = event.enrichment.payer_class
    name = event.event_type.removeprefix("validated.")
    if isinstance(o, b.ChargePosted | b.ChargeReversed):
        self_pay = pc is PayerClass.SELF_PAY or o.charge.payer_code is None
        ar = "1210" if self_pay else "1200"
        sign = 1 if isinstance(o, b.ChargePosted) else -1
        _move(sums, ar, "4000", sign * o.charge.amount.amount_minor, "USD")
    elif isinstance(o, b.PaymentPosted):
        self_pay = pc is PayerClass.SELF_PAY or o.payer_code is None
        _move(sums, "1010", "1210" if self_pay else "1200", o.amount.amount_minor, "USD")
    elif isinstance(o, b.AdjustmentPosted):
        a = o.amount.amount_minor
        scope = getattr(o, "scope", None)
        self_pay = pc is PayerClass.SELF_PAY or o.payer_code is None
        if scope is not None and scope.value == "provider":
            _move(sums, "4700" if o.reason_code == "L6" else "1250", "1010", a, "USD")
        elif self_pay:
            _move(sums, "4950", "1210", a, "USD")
        elif o.group_code is b.CarcGroup.CONTRACTUAL:
            _move(sums, "4900", "1200", a, "USD")
        elif o.group_code is b.CarcGroup.PATIENT_RESPONSIBILITY:
            _move(sums, "1210", "1200", a, "USD")
        else:
            _move(sums, "4950", "1200", a, "USD")
    elif isinstance(o, b.ClaimAdjudicatedV2):
        _move(sums, CLAIM_ACCOUNT[o.status.value], "9099", 1, "XXX")
    elif name in ("appointment.requested", "appointment.request_cancelled"):
        # A request has no slot and no expected revenue: nothing, unless the appointment
        # was active, whose forecast it releases (and a cancelled one is a cancellation).
        if previous in ACTIVE:
            service = event.enrichment.service_code or o.request.service_code
            fee = rules.fee_schedule.get(service, rules.fee_schedule["default"])
            if name == "appointment.request_cancelled":
                _move(sums, "9010", "9099", 1, "XXX")
            _move(sums, "9199", "9100", fee, "USD")
    else:
        status = o.appointment.status.value
        service = event.enrichment.service_code or o.appointment.service_code
        fee = rules.fee_schedule.get(service, rules.fee_schedule["default"])
        was_active = previous in ACTIVE
        is_active = status in ACTIVE
        if name in ("appointment.booked",) and (was_active or not is_active):
            return {}
        if name in COUNT_ACCOUNT:
            _move(sums, COUNT_ACCOUNT[name], "9099", 1, "XXX")
        if is_active and not was_active:
            _move(sums, "9100", "9199", fee, "USD")
        if was_active and not is_active:
            _move(sums, "9199", "9100", fee, "USD")
    return {k: n for k, n in sums.items() if n}


def journal_sums(journal: JournalEntryRequested) -> Sums:
    sums: defaultdict[tuple[str, str], int] = defaultdict(int)
    for line in journal.lines:
        sign = 1 if line.side is Side.DEBIT else -1
        sums[(line.account, line.amount.currency)] += sign * line.amount.amount_minor
    return {k: n for k, n in sums.items() if n}


def balanced_per_currency(journal: JournalEntryRequested) -> bool:
    totals: defaultdict[str, int] = defaultdict(int)
    for line in journal.lines:
        assert line.amount.amount_minor > 0
        totals[line.amount.currency] += (
            1 if line.side is Side.DEBIT else -1
        ) * line.amount.amount_minor
    return all(t == 0 for t in totals.values())


# -- rule directories and databases ---------------------------------------------------------


def copy_default_rules(target: Path) -> Path:
    shutil.copytree(default_rules_dir(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@asynccontextmanager
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A database of its own on the test server (stream sequences restart per private NATS,
    and the exception store de-duplicates on them)."""
    name = f"mapper_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = database_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
