"""What the scheduling systems send for an appointment's steps, on its channel: an HL7 SIU
message per step over MLLP, a FHIR request per step from the patient portal, or a row per step
in the satellite clinics' evening CSV export; with the event each input must become.
"""

from __future__ import annotations

import datetime as dt

from carebus_scenario.appointments import STATUS_OF, Appointment, Step
from carebus_scenario.day import Day
from carebus_scenario.model import CSV, FHIR, SIU, AppointmentFact, Delivery
from carebus_scenario.network import CSV_SOURCE, FHIR_SOURCE, SIU_SOURCE
from carebus_scenario.render import csv_export, fhir, hl7


class SchedulingFeed:
    def __init__(self, day: Day) -> None:
        self.day = day
        self.csv_rows: list[tuple[dt.datetime, csv_export.CsvRow, AppointmentFact]] = []

    def deliver(self, appt: Appointment) -> None:
        """Each step on the appointment's channel, in order (its lane)."""
        lane = f"appt:{appt.appointment_id}"
        planned: list[tuple[dt.datetime, Step]] = [(s.at, s) for s in appt.steps]
        if appt.fault == "out_of_order":
            index = next(i for i, s in enumerate(appt.steps) if s.event == "rescheduled")
            late = appt.steps[index + 1].at + dt.timedelta(seconds=1)
            planned[index] = (late, appt.steps[index])
        for version_no, (send_at, step) in enumerate(planned, 1):
            if appt.channel == SIU:
                self._deliver_siu(appt, step, send_at, lane)
            elif appt.channel == FHIR:
                self._deliver_fhir(appt, step, version_no, lane)
            else:
                self._queue_csv(appt, step)

    def _fact(
        self, appt: Appointment, step: Step, key: str, source: str, event: str, code: str
    ) -> AppointmentFact:
        return AppointmentFact(
            key=key,
            site=appt.site.code,
            source=source,
            appointment_id=appt.appointment_id,
            event=event,
            status=STATUS_OF[event],
            version=int(step.at.timestamp() * 1000),
            provider_code=code,
            location_code=appt.site.location_id,
            department_code=appt.dept.department_id,
            service_code=appt.service.code,
        )

    def _deliver_siu(self, appt: Appointment, step: Step, send_at: dt.datetime, lane: str) -> None:
        control_id = self.day.ids.next("S", 7)
        fact = self._fact(
            appt, step, f"siu:{control_id}", SIU_SOURCE, step.event, appt.provider_code
        )
        self.day.add(
            Delivery(
                seq=0,
                at=send_at,
                channel=SIU,
                lane=lane,
                payload=hl7.siu(siu_content(appt, step, control_id), sender=SIU_SOURCE),
                facts=(fact,),
                label=f"SIU {step.event} {appt.appointment_id}",
            )
        )

    def _deliver_fhir(self, appt: Appointment, step: Step, version: int, lane: str) -> None:
        # The portal has no "rescheduled": a new time is an update of a booked appointment.
        event = "modified" if step.event == "rescheduled" else step.event
        if event == "booked" and version > 1:
            event = "modified"
        body = fhir.appointment(
            appointment_id=appt.appointment_id,
            version=version,
            updated_at=step.at,
            event=event,
            patient_ref=appt.patient_ref,
            provider_id=appt.provider.provider_id,
            provider_npi=appt.provider.npi,
            location_id=appt.site.location_id,
            department_id=appt.dept.department_id,
            service_code=appt.service.code,
            slot_start=step.slot_start,
            slot_end=step.slot_end,
            reason=step.reason,
        )
        create = version == 1
        key = f"fhir:{appt.appointment_id}:{version}"
        self.day.add(
            Delivery(
                seq=0,
                at=step.at,
                channel=FHIR,
                lane=lane,
                payload=body,
                facts=(self._fact(appt, step, key, FHIR_SOURCE, event, appt.provider.npi),),
                label=f"FHIR {event} {appt.appointment_id}",
                method="POST" if create else "PUT",
                path="/fhir/Appointment" if create else f"/fhir/Appointment/{appt.appointment_id}",
                headers={
                    "Content-Type": "application/fhir+json",
                    "X-Carebus-Site": appt.site.code,
                    "X-Carebus-Source-System": FHIR_SOURCE,
                },
            )
        )

    def _queue_csv(self, appt: Appointment, step: Step) -> None:
        row = csv_export.CsvRow(
            appointment_id=appt.appointment_id,
            status=STATUS_OF[step.event],
            event=step.event,
            slot_start=step.slot_start,
            slot_end=step.slot_end,
            patient_ref=appt.patient_ref,
            provider_code=appt.provider.npi,
            location_code=appt.site.location_id,
            department_code=appt.dept.department_id,
            service_code=appt.service.code,
            reason=step.reason or "",
            site=appt.site.code,
            updated_at=step.at,
        )
        key = f"csv:{appt.appointment_id}:{step.at.isoformat()}"
        fact = self._fact(appt, step, key, CSV_SOURCE, step.event, appt.provider.npi)
        self.csv_rows.append((step.at, row, fact))

    def deliver_csv(self) -> None:
        if not self.csv_rows:
            return
        # The satellite clinics' export runs in the evening: every change of the day, in order.
        self.csv_rows.sort(key=lambda item: item[0])
        last = max(at for at, _, _ in self.csv_rows)
        self.day.add(
            Delivery(
                seq=0,
                at=last + dt.timedelta(minutes=30),
                channel=CSV,
                lane="csv",
                payload=csv_export.render_csv([row for _, row, _ in self.csv_rows]),
                facts=tuple(fact for _, _, fact in self.csv_rows),
                label=f"CSV export ({len(self.csv_rows)} rows)",
            )
        )


def siu_content(appt: Appointment, step: Step, control_id: str) -> hl7.SiuContent:
    """The SIU message of one step of the appointment."""
    return hl7.SiuContent(
        control_id=control_id,
        sent_at=step.at,
        site=appt.site.code,
        event=step.event,
        appointment_id=appt.appointment_id,
        patient_ref=appt.patient_ref,
        provider_code=appt.provider_code,
        provider_family=appt.provider.family,
        provider_given=appt.provider.given,
        location_id=appt.site.location_id,
        department_id=appt.dept.department_id,
        service_code=appt.service.code,
        service_text=appt.service.description,
        slot_start=step.slot_start,
        slot_end=step.slot_end,
        reason=step.reason,
    )
