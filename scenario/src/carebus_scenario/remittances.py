"""What the payers send: 835 remittance files settling claims of earlier visits.

Claims are adjudicated as payers do: allowed = billed x the payer's allowed share; the rest is
a CO-45 contractual adjustment; the patient's share (PR-1 deductible, PR-2 coinsurance, PR-3
copay) is taken off what the payer pays; ~7 % are denied (CO-50, nothing paid). A reversal
(CLP02 = 22) negates every amount of a paid claim, with claim-level CAS, and its correction
pays more. :func:`remittance_facts` is what the billing adapter publishes for a file. Each
claim is one earlier visit (CLP01 = its visit number); :meth:`Remittances.open_claims` sends
the charges the billing system posted for those visits, before the day.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import replace

from carebus_scenario.appointments import Appointment
from carebus_scenario.charges import opening_charges
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.day import Day
from carebus_scenario.ids import Ids
from carebus_scenario.model import (
    X12_INBOX,
    X12_UPLOAD,
    AdjustmentFact,
    BilledClaim,
    ClaimFact,
    Delivery,
    Fact,
    PaymentFact,
    Refusal,
)
from carebus_scenario.network import FAMILY, SERVICE_BY_CODE, X12_SOURCE, Network, PayerItem
from carebus_scenario.render import x12

CLAIM_STATUS = {"1": "paid", "4": "denied", "22": "reversed"}


class PayerDesk:
    def __init__(
        self, rng: random.Random, ids: Ids, config: ScenarioConfig, network: Network
    ) -> None:
        self.rng, self.ids, self.config, self.network = rng, ids, config, network
        self.billed: list[BilledClaim] = []

    def _chance(self, share: float) -> bool:
        return self.rng.random() < share

    def claim(self, payer: PayerItem, *, denied: bool | None = None) -> x12.Clp:
        """A claim of an earlier visit, adjudicated; the visit's charges are kept in
        :attr:`billed` (the billing system posted them, and submitted the claim, back then)."""
        rng = self.rng
        site = rng.choice(self.network.sites)
        dept = rng.choice(site.departments)
        evaluation = [c for c in dept.services if SERVICE_BY_CODE[c].evaluation]
        codes = [rng.choice(evaluation)]
        ancillaries = [c for c in dept.services if not SERVICE_BY_CODE[c].evaluation]
        if ancillaries and self._chance(0.4):
            codes.append(rng.choice(ancillaries))
        served = self.config.day - dt.timedelta(days=rng.randint(10, 40))
        claim_id = self.ids.next("CLM")  # the visit number, sent as the charges' PV1-19
        self.billed.append(
            BilledClaim(
                claim_id=claim_id, site=site, dept=dept,
                provider=rng.choice(site.providers_of(dept.department_id)),
                patient_ref=f"MRN{rng.randrange(10**7):07d}", plan_code=payer.plan_code,
                served=served, codes=tuple(codes),
            )
        )  # fmt: skip
        denied = self._chance(0.07) if denied is None else denied
        lines = []
        patient_total = 0
        for index, code in enumerate(codes):
            charge = SERVICE_BY_CODE[code].fee_minor
            if denied:
                lines.append(
                    x12.SvcLine(code, charge, 0, 1, served, (x12.Cas("CO", "50", charge),))
                )
                continue
            allowed = charge * payer.allowed_pct // 100
            responsibility = self._patient_share(payer, allowed, first=index == 0)
            adjustments = [x12.Cas("CO", "45", charge - allowed)]
            if responsibility:
                group_reason = {"medicare": "2", "other_government": "3"}.get(
                    payer.payer_class, "3"
                )
                if payer.payer_class == "commercial" and responsibility >= 10000:
                    group_reason = "1"
                adjustments.append(x12.Cas("PR", group_reason, responsibility))
            patient_total += responsibility
            lines.append(
                x12.SvcLine(code, charge, allowed - responsibility, 1, served, tuple(adjustments))
            )
        return x12.Clp(
            claim_id=claim_id,
            status="4" if denied else "1",
            charge_minor=sum(line.charge_minor for line in lines),
            paid_minor=sum(line.paid_minor for line in lines),
            patient_responsibility_minor=patient_total,
            payer_claim_id=self.ids.next("ICN"),
            patient_last=rng.choice(FAMILY).upper(),
            patient_member_id=f"M{rng.randrange(10**9):09d}",
            lines=tuple(lines),
        )

    def _patient_share(self, payer: PayerItem, allowed: int, *, first: bool) -> int:
        if payer.payer_class == "medicaid":
            return 0
        if payer.payer_class == "medicare":
            return allowed // 5  # 20% coinsurance
        if not first:
            return 0
        if payer.payer_class == "commercial" and self._chance(0.2):
            return min(allowed, 15000)  # deductible not met yet
        return min(allowed, 2500)  # copay

    def file(
        self, payer: PayerItem, payer_id: str, claims: list[x12.Clp], produced: dt.date,
        interest: tuple[x12.Plb, ...] = (), misstate: int | None = None,
    ) -> x12.RemittanceFile:  # fmt: skip
        number = self.ids.number("isa")
        return x12.RemittanceFile(
            control_number=(self.config.seed % 10_000) * 10_000 + number,
            payer_name=payer.name,
            payer_id=payer_id,
            payee_name="Carebus Health Network",
            payee_npi=self.network.organisation_npi,
            trace_number=self.ids.next("EFT"),
            paid_on=self.config.day,
            produced_on=produced,
            claims=tuple(claims),
            provider_adjustments=interest,
            misstate_claim=misstate,
        )

    def reversal(self, original: x12.Clp) -> list[x12.Clp]:
        """The payer takes a paid claim back (every amount negated, claim-level CAS) and
        re-adjudicates it at a higher allowed amount."""
        co = sum(
            a.amount_minor for line in original.lines for a in line.adjustments if a.group == "CO"
        )
        pr = [a for line in original.lines for a in line.adjustments if a.group == "PR"]
        reversed_claim = replace(
            original,
            status="22",
            charge_minor=-original.charge_minor,
            paid_minor=-original.paid_minor,
            patient_responsibility_minor=-original.patient_responsibility_minor,
            adjustments=(
                x12.Cas("CO", "45", -co),
                *(replace(a, amount_minor=-a.amount_minor) for a in pr),
            ),
            lines=(),
        )
        extra = max(100, co // 3)  # the payer now allows more
        corrected = replace(
            original,
            status="1",
            paid_minor=original.paid_minor + extra,
            payer_claim_id=self.ids.next("ICN"),
            adjustments=(x12.Cas("CO", "45", co - extra), *pr),
            lines=(),
        )
        return [reversed_claim, corrected]


class Remittances:
    """The day's 835 files, one or more per payer, sent by upload or through the inbox folder."""

    def __init__(self, day: Day) -> None:
        self.day = day
        self.payers = PayerDesk(day.rng, day.ids, day.config, day.network)

    def settle(self, appts: list[Appointment]) -> None:
        config = self.day.config
        files = self._files(appts)
        base = self.day.network.sites[0]
        reversal_done = False
        inbox_next = False
        for n, (payer, claims) in enumerate(files):
            at = self.day.at(base, 8 * 60 + n * (9 * 60 / max(1, len(files))))
            interest = (
                (x12.Plb("L6", f"INT{n + 1}", -self.day.rng.randint(100, 900)),) if n == 0 else ()
            )
            produced = config.day - dt.timedelta(days=3)
            remit = self.payers.file(payer, payer.edi_id, claims, produced, interest)
            channel = X12_UPLOAD
            if not reversal_done and len(claims) >= 2:
                # This payer later takes one claim back and pays it again, corrected.
                reversal_done = True
                self.deliver(remit, at, X12_UPLOAD)
                self._deliver_reversal(payer, claims[0], at + dt.timedelta(hours=4))
                continue
            if config.use_inbox and inbox_next:
                channel = X12_INBOX
            inbox_next = not inbox_next
            self.deliver(remit, at, channel)

    def _files(self, appts: list[Appointment]) -> list[tuple[PayerItem, list[x12.Clp]]]:
        """Claims of earlier visits, in proportion to the day's; per payer, split over its files."""
        config, payers = self.day.config, self.day.network.payers
        visits = sum(1 for a in appts if a.today)
        count = max(2, round(visits * config.remittance_claims_per_visit))
        by_payer: dict[str, list[x12.Clp]] = {}
        for _ in range(count):
            payer = self.day.rng.choices(payers, weights=[p.weight for p in payers])[0]
            by_payer.setdefault(payer.payer_id, []).append(self.payers.claim(payer))
        files: list[tuple[PayerItem, list[x12.Clp]]] = []
        for payer in payers:
            claims = by_payer.get(payer.payer_id, [])
            per_file = config.remittance_files_per_payer
            for n in range(per_file):
                chunk = claims[n::per_file]
                if chunk:
                    files.append((payer, chunk))
        return files

    def deliver(
        self,
        remit: x12.RemittanceFile,
        at: dt.datetime,
        channel: str,
        refusal: Refusal | None = None,
    ) -> Delivery:
        name = f"{remit.trace_number}.835"
        site = self.day.config.remittance_site
        facts = () if refusal else tuple(remittance_facts(remit, name, site))
        return self.day.add(
            Delivery(
                seq=0,
                at=at,
                channel=channel,
                lane="x12" if channel == X12_UPLOAD else "inbox",
                payload=x12.render_835(remit),
                facts=facts,
                refusal=refusal,
                label=name,
            )
        )

    def open_claims(self) -> None:
        """The charges of every claim the day's files settle (rejected files' too: those stay
        open), posted by the billing system the day after each visit."""
        for claim in self.payers.billed:
            opening_charges(self.day, claim)

    def _deliver_reversal(self, payer: PayerItem, original: x12.Clp, at: dt.datetime) -> None:
        produced = self.day.config.day - dt.timedelta(days=1)
        remit = self.payers.file(payer, payer.edi_id, self.payers.reversal(original), produced)
        self.deliver(remit, at, X12_UPLOAD)


def remittance_facts(remit: x12.RemittanceFile, name: str, site: str) -> Iterable[Fact]:
    """The billing adapter's events for one accepted file: per claim its adjudication, its
    payment (when it pays anything) and one adjustment per CAS; one per PLB adjustment."""
    source, payer_code = X12_SOURCE, remit.payer_id
    base = int(remit.produced_on.strftime("%Y%m%d")) * 100_000
    for position, claim in enumerate(remit.claims, 1):
        key = f"x12:{name}:{position}"
        yield ClaimFact(
            key=f"{key}:claim", site=site, source=source, claim_id=claim.claim_id,
            payer_code=payer_code, status=CLAIM_STATUS[claim.status], version=base + position,
            service_codes=tuple(line.service_code for line in claim.lines),
        )  # fmt: skip
        if claim.paid_minor:
            yield PaymentFact(
                key=f"{key}:payment", site=site, source=source, payment_id=f"{key}:payment",
                payer_code=payer_code, amount_minor=claim.paid_minor, claim_id=claim.claim_id,
            )  # fmt: skip
        cas = [("claim", a) for a in claim.adjustments]
        cas += [("service_line", a) for line in claim.lines for a in line.adjustments]
        for n, (scope, adj) in enumerate(cas, 1):
            yield AdjustmentFact(
                key=f"{key}:cas{n}", site=site, source=source, adjustment_id=f"{key}:cas{n}",
                payer_code=payer_code, group=adj.group, reason=adj.reason,
                amount_minor=adj.amount_minor, scope=scope, claim_id=claim.claim_id,
            )  # fmt: skip
    for n, plb in enumerate(remit.provider_adjustments, 1):
        yield AdjustmentFact(
            key=f"x12:{name}:plb{n}", site=site, source=source,
            adjustment_id=f"x12:{name}:plb{n}",
            payer_code=payer_code, group="OA", reason=plb.reason,
            amount_minor=plb.amount_minor, scope="provider",
        )  # fmt: skip
