"""What the practice management system bills for the completed visits (DFT^P03): the visit code
and its ancillaries within two hours, the copay taken at check-in (insured) or at the desk
(self-pay), and the odd charge entered in error, credited back later in the day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from carebus_scenario.appointments import Appointment
from carebus_scenario.day import Day
from carebus_scenario.model import DFT, BilledClaim, ChargeFact, Delivery, Fact, PaymentFact
from carebus_scenario.network import (
    DFT_SOURCE,
    SERVICE_BY_CODE,
    UNKNOWN_PLAN_CODE,
    Department,
    ServiceItem,
    Site,
)
from carebus_scenario.render import hl7


class Billing:
    def __init__(self, day: Day) -> None:
        self.day = day

    def bill(self, appts: list[Appointment]) -> None:
        """The completed visits whose appointment reached the validator in one piece."""
        visits = [a for a in appts if a.completed is not None and a.fault in (None, "out_of_order")]
        unknown_payer = {
            id(a)
            for a in self.day.pick_share(
                [v for v in visits if v.payer], self.day.config.faults.unknown_payer
            )
        }
        for appt in visits:
            plan = appt.payer.plan_code if appt.payer else ""
            if id(appt) in unknown_payer:
                plan = UNKNOWN_PLAN_CODE
            self._copay(appt)
            self._charges(appt, plan)

    def dft(
        self, appt: Appointment, at: dt.datetime, lines: list[hl7.Ft1], facts: list[Fact], what: str
    ) -> Delivery:
        control_id = self.day.ids.next("D", 7)
        facts = [replace(f, key=f"dft:{control_id}:{n}") for n, f in enumerate(facts, 1)]
        return _dft_delivery(
            self.day, control_id, at, appt.site, appt.dept, appt.patient_ref,
            f"V{appt.appointment_id}",  # the visit number: the claim's id (CLM01)
            lines, facts, lane=f"visit:{appt.appointment_id}",
            label=f"DFT {what} {appt.appointment_id}",
        )  # fmt: skip

    def _copay(self, appt: Appointment) -> None:
        arrived = appt.checked_in
        if arrived is None or not self.day.chance(0.45 if appt.payer else 0.7):
            return
        rng = self.day.rng
        amount = rng.choice((2000, 2500, 4000)) if appt.payer else rng.choice((5000, 7500, 10000))
        payment_id = self.day.ids.next("PAY")
        at = arrived.at + dt.timedelta(minutes=1)
        line = hl7.Ft1(transaction_id=payment_id, kind="PY", at=at, amount_minor=-amount)
        fact = PaymentFact(
            key="", site=appt.site.code, source=DFT_SOURCE, payment_id=payment_id,
            payer_code=None, amount_minor=amount,
        )  # fmt: skip
        self.dft(appt, at, [line], [fact], "copay")

    def _charges(self, appt: Appointment, plan: str) -> None:
        done = appt.completed
        assert done is not None
        rng = self.day.rng
        ancillaries = [c for c in appt.dept.services if not SERVICE_BY_CODE[c].evaluation]
        codes = [appt.service.code]
        extra = rng.choice((0, 0, 1, 1, 2))
        codes += rng.sample(ancillaries, min(extra, len(ancillaries)))
        at = done.at + dt.timedelta(minutes=rng.randint(5, 120))
        lines: list[hl7.Ft1] = []
        facts: list[Fact] = []
        for code in codes:
            service = SERVICE_BY_CODE[code]
            units = rng.randint(2, 3) if code == "97110" else 1
            charge_id = self.day.ids.next("CHG")
            line = self.ft1(appt, "CG", charge_id, done.slot_start, service, units, plan)
            lines.append(line)
            facts.append(self._charge_fact(appt, line, plan, reversal=False))
        self.dft(appt, at, lines, facts, "charges")
        # A charge entered in error is credited back later in the day.
        for line in lines:
            if self.day.chance(0.03):
                credit = replace(line, kind="CD", amount_minor=-line.amount_minor)
                fact = self._charge_fact(appt, credit, plan, reversal=True)
                later = at + dt.timedelta(minutes=rng.randint(30, 240))
                self.dft(appt, later, [credit], [fact], "credit")

    def ft1(
        self, appt: Appointment, kind: str, transaction_id: str, at: dt.datetime,
        service: ServiceItem, units: int, plan: str,
    ) -> hl7.Ft1:  # fmt: skip
        return hl7.Ft1(
            transaction_id=transaction_id,
            kind=kind,
            at=at,
            amount_minor=service.fee_minor * units,
            units=units,
            service_code=service.code,
            service_text=service.description,
            department_id=appt.dept.department_id,
            plan_code=plan,
            location_id=appt.site.location_id,
            npi=appt.provider.npi,
            provider_family=appt.provider.family,
            provider_given=appt.provider.given,
        )

    def _charge_fact(
        self, appt: Appointment, line: hl7.Ft1, plan: str, *, reversal: bool
    ) -> ChargeFact:
        return ChargeFact(
            key="",
            site=appt.site.code,
            source=DFT_SOURCE,
            charge_id=line.transaction_id,
            amount_minor=abs(line.amount_minor),
            provider_code=appt.provider.npi,
            location_code=appt.site.location_id,
            department_code=appt.dept.department_id,
            service_code=line.service_code,
            payer_code=plan or None,
            reversal=reversal,
            encounter_id=f"V{appt.appointment_id}",
        )


def opening_charges(day: Day, claim: BilledClaim) -> Delivery:
    """The DFT^P03 with which the billing system posted an earlier visit's charges, the day
    after the visit: the claim it submitted (CLM01 = the visit number) is what an 835 of the
    day settles (docs/decisions/021)."""
    posted = day.at(claim.site, 18 * 60, claim.served + dt.timedelta(days=1))
    control_id = day.ids.next("D", 7)
    lines: list[hl7.Ft1] = []
    facts: list[Fact] = []
    for n, code in enumerate(claim.codes, 1):
        service = SERVICE_BY_CODE[code]
        charge_id = f"{claim.claim_id}-{n}"
        lines.append(
            hl7.Ft1(
                transaction_id=charge_id,
                kind="CG",
                at=dt.datetime.combine(claim.served, dt.time(9), tzinfo=posted.tzinfo),
                amount_minor=service.fee_minor,
                service_code=code,
                service_text=service.description,
                department_id=claim.dept.department_id,
                plan_code=claim.plan_code,
                location_id=claim.site.location_id,
                npi=claim.provider.npi,
                provider_family=claim.provider.family,
                provider_given=claim.provider.given,
            )
        )
        facts.append(
            ChargeFact(
                key=f"dft:{control_id}:{n}",
                site=claim.site.code,
                source=DFT_SOURCE,
                charge_id=charge_id,
                amount_minor=service.fee_minor,
                provider_code=claim.provider.npi,
                location_code=claim.site.location_id,
                department_code=claim.dept.department_id,
                service_code=code,
                payer_code=claim.plan_code,
                encounter_id=claim.claim_id,
            )
        )
    return _dft_delivery(
        day, control_id, posted, claim.site, claim.dept, claim.patient_ref, claim.claim_id,
        lines, facts, lane=f"claim:{claim.claim_id}",
        label=f"DFT opening charges {claim.claim_id}", opening=True,
    )  # fmt: skip


def _dft_delivery(
    day: Day, control_id: str, at: dt.datetime, site: Site, dept: Department, patient_ref: str,
    visit_number: str, lines: list[hl7.Ft1], facts: list[Fact], *, lane: str, label: str,
    opening: bool = False,
) -> Delivery:  # fmt: skip
    return day.add(
        Delivery(
            seq=0,
            at=at,
            channel=DFT,
            lane=lane,
            payload=hl7.dft(
                sender=DFT_SOURCE,
                site=site.code,
                control_id=control_id,
                sent_at=at,
                patient_ref=patient_ref,
                visit_number=visit_number,
                location_id=site.location_id,
                department_id=dept.department_id,
                lines=lines,
            ),
            facts=tuple(facts),
            label=label,
            opening=opening,
        )
    )
