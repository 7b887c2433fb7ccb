"""The appointments of the day and their lifecycle: who books what, when, and what happens to it
(rescheduled, cancelled, checked in and completed, or a no-show); bookings for the coming
weeks too. What is sent for them, and how, is :mod:`carebus_scenario.scheduling_feed`'s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from carebus_scenario.day import Day
from carebus_scenario.model import CSV, FHIR, SIU
from carebus_scenario.network import (
    SELF_PAY_WEIGHT,
    SERVICE_BY_CODE,
    Department,
    PayerItem,
    Provider,
    ServiceItem,
    Site,
)

STATUS_OF = {
    "booked": "booked",
    "rescheduled": "booked",
    "modified": "booked",
    "checked_in": "checked_in",
    "completed": "completed",
    "cancelled": "cancelled",
    "no_show": "no_show",
}
CANCEL_REASONS = ("Patient request", "Provider unavailable", "Weather", "Scheduled elsewhere")


@dataclass
class Step:
    at: dt.datetime
    event: str
    slot_start: dt.datetime
    slot_end: dt.datetime
    reason: str | None = None

    def __post_init__(self) -> None:
        # HL7 timestamps carry whole seconds; versions derive from them.
        self.at = self.at.replace(microsecond=0)


@dataclass
class Appointment:
    appointment_id: str
    site: Site
    dept: Department
    provider: Provider
    provider_code: str  # what the SIU feed sends (local code; a bad one for faults)
    service: ServiceItem
    patient_ref: str
    payer: PayerItem | None
    channel: str
    today: bool
    fault: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def completed(self) -> Step | None:
        return next((s for s in self.steps if s.event == "completed"), None)

    @property
    def checked_in(self) -> Step | None:
        return next((s for s in self.steps if s.event == "checked_in"), None)


class Schedule:
    def __init__(self, day: Day) -> None:
        self.day = day

    def book(self, site: Site) -> list[Appointment]:
        """The site's visits of the day, then its bookings for the coming weeks."""
        appts = []
        for _ in range(self.day.config.appointments_per_site):
            appt = self.new(site, today=True)
            self.today_lifecycle(appt)
            appts.append(appt)
        for _ in range(max(1, self.day.config.appointments_per_site // 3)):
            appt = self.new(site, today=False)
            self.future_lifecycle(appt)
            appts.append(appt)
        return appts

    def new(self, site: Site, today: bool) -> Appointment:
        rng = self.day.rng
        dept = rng.choice(site.departments)
        provider = rng.choice(site.providers_of(dept.department_id))
        evaluation = [c for c in dept.services if SERVICE_BY_CODE[c].evaluation]
        service = SERVICE_BY_CODE[rng.choice(evaluation)]
        return Appointment(
            appointment_id=self.day.ids.next("A"),
            site=site,
            dept=dept,
            provider=provider,
            provider_code=provider.local_code,
            service=service,
            patient_ref=f"MRN{rng.randrange(10**7):07d}",
            payer=self._payer(),
            channel=self._channel(),
            today=today,
        )

    def _channel(self) -> str:
        roll = self.day.rng.random()
        if roll < self.day.config.csv_share:
            return CSV
        if roll < self.day.config.csv_share + self.day.config.fhir_share:
            return FHIR
        return SIU

    def _payer(self) -> PayerItem | None:
        payers = self.day.network.payers
        weights = [p.weight for p in payers] + [SELF_PAY_WEIGHT]
        choice = self.day.rng.choices([*payers, None], weights=weights)[0]
        return choice

    def _slot(
        self, site: Site, service: ServiceItem, day: dt.date
    ) -> tuple[dt.datetime, dt.datetime]:
        # Slots on a quarter hour between 08:00 and 16:45.
        start = self.day.at(site, 8 * 60 + 15 * self.day.rng.randrange(36), day)
        return start, start + dt.timedelta(minutes=service.minutes)

    def today_lifecycle(self, appt: Appointment) -> None:
        rng, site = self.day.rng, appt.site
        start, end = self._slot(site, appt.service, self.day.config.day)
        slot_minutes = (start - self.day.at(site, 0)).total_seconds() / 60
        booked_at = self.day.at(site, 360 + rng.uniform(0, max(1.0, slot_minutes - 420)))
        appt.steps.append(Step(booked_at, "booked", start, end))
        last = booked_at
        if self.day.chance(0.10) and start.hour < 15:
            moved = last + dt.timedelta(minutes=rng.randint(5, 45))
            start = start + dt.timedelta(minutes=15 * rng.randint(4, 8))
            end = start + dt.timedelta(minutes=appt.service.minutes)
            appt.steps.append(Step(moved, "rescheduled", start, end))
            last = moved
        roll = rng.random()
        if roll < 0.14:
            at = last + (start - last) * rng.uniform(0.2, 0.9)
            appt.steps.append(Step(at, "cancelled", start, end, rng.choice(CANCEL_REASONS)))
        elif roll < 0.22:
            at = start + dt.timedelta(minutes=rng.randint(20, 40))
            appt.steps.append(Step(at, "no_show", start, end, "Patient did not arrive"))
        else:
            arrived = start - dt.timedelta(minutes=rng.randint(2, 12))
            done = end + dt.timedelta(minutes=rng.randint(0, 15))
            appt.steps.append(
                Step(max(arrived, last + dt.timedelta(seconds=30)), "checked_in", start, end)
            )
            appt.steps.append(Step(done, "completed", start, end))

    def future_lifecycle(self, appt: Appointment) -> None:
        rng, site = self.day.rng, appt.site
        day = self.day.config.day + dt.timedelta(days=rng.randint(1, 21))
        start, end = self._slot(site, appt.service, day)
        at = self.day.at(site, rng.uniform(8 * 60, 17 * 60))
        appt.steps.append(Step(at, "booked", start, end))
        if self.day.chance(0.12):
            at = at + dt.timedelta(minutes=rng.randint(10, 120))
            start, end = self._slot(site, appt.service, day + dt.timedelta(days=rng.randint(1, 5)))
            appt.steps.append(Step(at, "rescheduled", start, end))
        if self.day.chance(0.15):
            at = at + dt.timedelta(minutes=rng.randint(10, 180))
            appt.steps.append(Step(at, "cancelled", start, end, rng.choice(CANCEL_REASONS)))
