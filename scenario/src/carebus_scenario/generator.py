"""A day in the network: the scheduling feed, the charges of completed visits, the payers'
remittance files, and the faults a real feed has, as the inputs the adapters receive.

The day, per site:

* the morning schedule load books the day's visits (SIU S12, 06:00 onwards); during the day
  some are rescheduled (S13), cancelled (S15), checked in (S14 "Arrived") and completed
  (S14 "Complete") or marked no-show (S26); appointments for the coming weeks are booked,
  some rescheduled or cancelled again;
* each completed visit is billed (DFT^P03: the visit code and its ancillaries) within two
  hours; insured patients pay a copay at check-in, self-pay patients at the desk (FT1 PY);
  a few charges entered in error are credited back (FT1 CD);
* the payers' 835 files settle claims of earlier visits: payments, contractual adjustments
  (CO-45), patient responsibility (PR-1/2/3), denials (CO-50), prompt-pay interest (PLB L6)
  and one claim reversed (CLP02 = 22) and re-adjudicated.

Channels: most appointments come over HL7 SIU/MLLP, some from the patient portal (FHIR) and a
few in the CSV export of a satellite clinic; every input of one appointment goes through one
channel, in order (its *lane*), as one source system would send it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, replace

from carebus_scenario.appointments import Appointment, Schedule
from carebus_scenario.charges import Billing
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.day import Day
from carebus_scenario.model import (
    DFT,
    FHIR,
    SIU,
    X12_INBOX,
    X12_UPLOAD,
    Delivery,
    Refusal,
)
from carebus_scenario.network import (
    SIU_SOURCE,
    UNKNOWN_PAYER_EDI,
    Network,
    Site,
    build_network,
)
from carebus_scenario.remittances import Remittances
from carebus_scenario.render import hl7
from carebus_scenario.scheduling_feed import SchedulingFeed


@dataclass(frozen=True)
class Scenario:
    config: ScenarioConfig
    network: Network
    deliveries: list[Delivery]

    @property
    def events(self) -> int:
        """Canonical events the inputs carry (repeats included): the offered load."""
        return sum(len(d.facts) for d in self.deliveries)

    def channels(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.deliveries:
            counts[d.channel] = counts.get(d.channel, 0) + 1
        return counts


def generate(config: ScenarioConfig) -> Scenario:
    return _Generator(config).run()


class _Generator:
    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.day = Day(config, build_network(config, random.Random(config.network_seed)))
        self.rng, self.network, self.ids = self.day.rng, self.day.network, self.day.ids
        self.schedule = Schedule(self.day)
        self.feed = SchedulingFeed(self.day)
        self.billing = Billing(self.day)
        self.remittances = Remittances(self.day)

    # -- top level ------------------------------------------------------------------------
    def run(self) -> Scenario:
        appts = [appt for site in self.network.sites for appt in self.schedule.book(site)]
        self._assign_provider_faults(appts)
        for appt in appts:
            self.feed.deliver(appt)
        self.feed.deliver_csv()
        self.billing.bill(appts)
        self.remittances.settle(appts)
        self._faulty_remittances(self.network.sites[0])
        self._malformed()
        self._duplicates()
        return Scenario(self.config, self.network, self.day.in_order())

    # -- appointments ---------------------------------------------------------------------
    def _assign_provider_faults(self, appts: list[Appointment]) -> None:
        faults = self.config.faults
        candidates = [a for a in appts if a.channel == SIU]
        for appt in self.day.pick_share(candidates, faults.unknown_provider):
            appt.fault = "unknown_provider"
            appt.provider_code = f"DR9{self.ids.number('unknown-provider'):04d}"
        candidates = [a for a in candidates if a.fault is None]
        for appt in self.day.pick_share(candidates, faults.inactive_provider):
            appt.fault = "inactive_provider"
            appt.provider = appt.site.retired[0]
            appt.provider_code = appt.provider.local_code
        # Late updates: a reschedule that reaches us after the change that followed it.
        rescheduled = [
            a
            for a in appts
            if a.channel == SIU
            and a.fault is None
            and any(s.event == "rescheduled" for s in a.steps[:-1])
        ]
        for appt in self.day.pick_share(rescheduled, faults.out_of_order):
            appt.fault = "out_of_order"

    # -- remittances ----------------------------------------------------------------------
    def _faulty_remittances(self, base: Site) -> None:
        faults = self.config.faults
        payer = self.network.payers[0]
        if faults.unbalanced_835 > 0:
            claims = [self.remittances.payers.claim(payer, denied=False) for _ in range(2)]
            remit = self.remittances.payers.file(
                payer, payer.edi_id, claims, self.config.day, misstate=1
            )
            refusal = Refusal(
                "billing_adapter", "contract", "claim_unbalanced", self.config.remittance_site
            )
            self.remittances.deliver(remit, self.day.at(base, 11 * 60), X12_UPLOAD, refusal)
        if faults.unknown_payer_835 > 0:
            stranger = replace(payer, name="Lakeshore Health Plan", edi_id=UNKNOWN_PAYER_EDI)
            claims = [self.remittances.payers.claim(stranger, denied=False) for _ in range(2)]
            remit = self.remittances.payers.file(
                stranger, UNKNOWN_PAYER_EDI, claims, self.config.day
            )
            channel = X12_INBOX if self.config.use_inbox else X12_UPLOAD
            self.remittances.deliver(remit, self.day.at(base, 15 * 60), channel)

    # -- faults that are whole inputs -----------------------------------------------------
    def _malformed(self) -> None:
        share = self.config.faults.malformed_hl7
        if share <= 0:
            return
        siu_count = sum(1 for d in self.day.deliveries if d.channel == SIU)
        dft_count = sum(1 for d in self.day.deliveries if d.channel == DFT)
        sites = self.network.sites
        for _ in range(max(1, round(share * siu_count))):
            site = self.rng.choice(sites)
            appt = self.schedule.new(site, today=True)
            self.schedule.today_lifecycle(appt)
            step = appt.steps[0]
            control_id = self.ids.next("S", 7)
            content = hl7.SiuContent(
                control_id=control_id, sent_at=step.at, site=site.code, event="booked",
                appointment_id=appt.appointment_id, patient_ref=appt.patient_ref,
                provider_code=appt.provider_code, provider_family=appt.provider.family,
                provider_given=appt.provider.given, location_id=site.location_id,
                department_id=appt.dept.department_id, service_code=appt.service.code,
                service_text=appt.service.description, slot_start=step.slot_start,
                slot_end=step.slot_end,
            )  # fmt: skip
            self.day.add(
                Delivery(
                    seq=0, at=step.at, channel=SIU, lane=f"appt:{appt.appointment_id}",
                    payload=hl7.siu(content, sender=SIU_SOURCE, drop_pid=True),
                    refusal=Refusal(
                        "scheduling_adapter", "mapping", "required_field_missing", site.code
                    ),
                    label=f"SIU without PID {appt.appointment_id}",
                )
            )  # fmt: skip
        site = sites[0]
        self.day.add(
            Delivery(
                seq=0, at=self.day.at(site, 7 * 60), channel=SIU, lane="garbage",
                payload=hl7.garbage(self.config.run_tag),
                refusal=Refusal("scheduling_adapter", "contract", "parse_error", None),
                label="not an HL7 message",
            )
        )  # fmt: skip
        for _ in range(max(1, round(share * dft_count))):
            site = self.rng.choice(sites)
            appt = self.schedule.new(site, today=True)
            self.schedule.today_lifecycle(appt)
            service = appt.service
            line = replace(
                self.billing.ft1(
                    appt, "CG", self.ids.next("CHG"), appt.steps[0].slot_start, service, 1, ""
                ),
                amount_text=f"{service.fee_minor // 100}.{service.fee_minor % 100:02d}5",
            )
            delivery = self.billing.dft(
                appt, appt.steps[0].slot_end + dt.timedelta(hours=1), [line], [], "bad amount"
            )
            delivery.refusal = Refusal("billing_adapter", "contract", "data_type_error", site.code)
            delivery.label = f"DFT with a malformed amount {appt.appointment_id}"

    def _duplicates(self) -> None:
        share = self.config.faults.duplicates
        if share <= 0:
            return
        repeatable = [
            d for d in self.day.deliveries if d.refusal is None and d.channel in (SIU, DFT, FHIR)
        ]
        count = max(1, round(share * len(repeatable)))
        for original in self.rng.sample(repeatable, min(count, len(repeatable))):
            payload = original.payload
            if original.channel == SIU and self.day.chance(0.5):
                payload = _resent_with_new_msh7(payload, original.at + dt.timedelta(minutes=2))
            self.day.add(
                replace(
                    original,
                    at=original.at + dt.timedelta(seconds=self.rng.randint(1, 600)),
                    payload=payload,
                    duplicate=True,
                    label=f"{original.label} (sent again)",
                )
            )
        uploads = [d for d in self.day.deliveries if d.channel == X12_UPLOAD and d.refusal is None]
        if uploads:
            original = uploads[-1]
            self.day.add(
                replace(
                    original,
                    at=original.at + dt.timedelta(minutes=30),
                    duplicate=True,
                    label=f"{original.label} (uploaded again)",
                )
            )


def _resent_with_new_msh7(payload: bytes, sent_at: dt.datetime) -> bytes:
    """A retransmission: the interface engine re-sends with a fresh MSH-7, same MSH-10."""
    head, sep, rest = payload.partition(b"\r")
    fields = head.split(b"|")
    fields[6] = hl7.ts(sent_at).encode()
    return b"|".join(fields) + sep + rest
