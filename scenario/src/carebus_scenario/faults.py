"""The faults a real feed has (their shares: :class:`carebus_scenario.config.FaultMix`):
appointments with an unknown or retired provider and updates that arrive late, remittance files
that do not balance or come from a payer nobody knows, HL7 messages the adapters must refuse,
and inputs sent twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from carebus_scenario.appointments import Appointment, Schedule
from carebus_scenario.charges import Billing
from carebus_scenario.day import Day
from carebus_scenario.model import DFT, FHIR, SIU, X12_INBOX, X12_UPLOAD, Delivery, Refusal
from carebus_scenario.network import SIU_SOURCE, UNKNOWN_PAYER_EDI
from carebus_scenario.remittances import Remittances
from carebus_scenario.render import hl7
from carebus_scenario.scheduling_feed import siu_content


class Faults:
    def __init__(
        self, day: Day, schedule: Schedule, billing: Billing, remittances: Remittances
    ) -> None:
        self.day = day
        self.schedule = schedule
        self.billing = billing
        self.remittances = remittances

    # -- faults in appointments -----------------------------------------------------------
    def assign_provider_faults(self, appts: list[Appointment]) -> None:
        faults = self.day.config.faults
        candidates = [a for a in appts if a.channel == SIU]
        for appt in self.day.pick_share(candidates, faults.unknown_provider):
            appt.fault = "unknown_provider"
            appt.provider_code = f"DR9{self.day.ids.number('unknown-provider'):04d}"
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

    # -- remittance files -----------------------------------------------------------------
    def faulty_remittances(self) -> None:
        day, faults, desk = self.day, self.day.config.faults, self.remittances.payers
        base = day.network.sites[0]
        payer = day.network.payers[0]
        if faults.unbalanced_835 > 0:
            claims = [desk.claim(payer, denied=False) for _ in range(2)]
            remit = desk.file(payer, payer.edi_id, claims, day.config.day, misstate=1)
            refusal = Refusal(
                "billing_adapter", "contract", "claim_unbalanced", day.config.remittance_site
            )
            self.remittances.deliver(remit, day.at(base, 11 * 60), X12_UPLOAD, refusal)
        if faults.unknown_payer_835 > 0:
            stranger = replace(payer, name="Lakeshore Health Plan", edi_id=UNKNOWN_PAYER_EDI)
            claims = [desk.claim(stranger, denied=False) for _ in range(2)]
            remit = desk.file(stranger, UNKNOWN_PAYER_EDI, claims, day.config.day)
            channel = X12_INBOX if day.config.use_inbox else X12_UPLOAD
            self.remittances.deliver(remit, day.at(base, 15 * 60), channel)

    # -- faults that are whole inputs -----------------------------------------------------
    def malformed(self) -> None:
        share = self.day.config.faults.malformed_hl7
        if share <= 0:
            return
        siu_count = sum(1 for d in self.day.deliveries if d.channel == SIU)
        dft_count = sum(1 for d in self.day.deliveries if d.channel == DFT)
        for _ in range(max(1, round(share * siu_count))):
            self._siu_without_pid(self._stray_visit())
        self._garbage()
        for _ in range(max(1, round(share * dft_count))):
            self._dft_with_bad_amount(self._stray_visit())

    def _stray_visit(self) -> Appointment:
        """A visit of the day at some site, for a message about it that is refused."""
        appt = self.schedule.new(self.day.rng.choice(self.day.network.sites), today=True)
        self.schedule.today_lifecycle(appt)
        return appt

    def _siu_without_pid(self, appt: Appointment) -> None:
        step = appt.steps[0]
        content = siu_content(appt, step, self.day.ids.next("S", 7))
        self.day.add(
            Delivery(
                seq=0, at=step.at, channel=SIU, lane=f"appt:{appt.appointment_id}",
                payload=hl7.siu(content, sender=SIU_SOURCE, drop_pid=True),
                refusal=Refusal(
                    "scheduling_adapter", "mapping", "required_field_missing", appt.site.code
                ),
                label=f"SIU without PID {appt.appointment_id}",
            )
        )  # fmt: skip

    def _garbage(self) -> None:
        self.day.add(
            Delivery(
                seq=0, at=self.day.at(self.day.network.sites[0], 7 * 60), channel=SIU,
                lane="garbage", payload=hl7.garbage(self.day.config.run_tag),
                refusal=Refusal("scheduling_adapter", "contract", "parse_error", None),
                label="not an HL7 message",
            )
        )  # fmt: skip

    def _dft_with_bad_amount(self, appt: Appointment) -> None:
        service, first = appt.service, appt.steps[0]
        charge_id = self.day.ids.next("CHG")
        line = replace(
            self.billing.ft1(appt, "CG", charge_id, first.slot_start, service, 1, ""),
            amount_text=f"{service.fee_minor // 100}.{service.fee_minor % 100:02d}5",
        )
        at = first.slot_end + dt.timedelta(hours=1)
        delivery = self.billing.dft(appt, at, [line], [], "bad amount")
        delivery.refusal = Refusal("billing_adapter", "contract", "data_type_error", appt.site.code)
        delivery.label = f"DFT with a malformed amount {appt.appointment_id}"

    def duplicates(self) -> None:
        share = self.day.config.faults.duplicates
        if share <= 0:
            return
        repeatable = [
            d for d in self.day.deliveries if d.refusal is None and d.channel in (SIU, DFT, FHIR)
        ]
        count = max(1, round(share * len(repeatable)))
        for original in self.day.rng.sample(repeatable, min(count, len(repeatable))):
            payload = original.payload
            if original.channel == SIU and self.day.chance(0.5):
                payload = _resent_with_new_msh7(payload, original.at + dt.timedelta(minutes=2))
            self.day.add(
                replace(
                    original,
                    at=original.at + dt.timedelta(seconds=self.day.rng.randint(1, 600)),
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
