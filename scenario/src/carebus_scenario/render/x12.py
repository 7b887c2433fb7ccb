"""X12 005010X221A1 (835) remittance advice files, as a payer sends them.

Amounts are balanced the way the standard requires (and the billing adapter checks):
service line ``SVC02 - line CAS = SVC03``, claim ``CLP03 - all CAS = CLP04``, payment
``BPR02 = sum(CLP04) - sum(PLB)``. ``misstate_claim`` writes one claim's CLP04 a cent off,
which is what an unbalanced file from a faulty payer system looks like.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from carebus_scenario.render.hl7 import money


@dataclass(frozen=True)
class Cas:
    group: str
    reason: str
    amount_minor: int


@dataclass(frozen=True)
class SvcLine:
    service_code: str
    charge_minor: int
    paid_minor: int
    units: int
    service_date: dt.date
    adjustments: tuple[Cas, ...] = ()


@dataclass(frozen=True)
class Clp:
    claim_id: str
    status: str  # CLP02: 1 processed as primary, 4 denied, 22 reversal
    charge_minor: int
    paid_minor: int
    patient_responsibility_minor: int
    payer_claim_id: str
    patient_last: str
    patient_member_id: str
    adjustments: tuple[Cas, ...] = ()  # claim level
    lines: tuple[SvcLine, ...] = ()


@dataclass(frozen=True)
class Plb:
    reason: str  # e.g. L6 interest
    reference: str
    amount_minor: int  # positive: the payer keeps it; negative: the payer adds it


@dataclass(frozen=True)
class RemittanceFile:
    control_number: int
    payer_name: str
    payer_id: str  # N1*PR04 (XV): the payer's identification
    payee_name: str
    payee_npi: str
    trace_number: str
    paid_on: dt.date  # BPR16
    produced_on: dt.date  # DTM*405
    claims: tuple[Clp, ...]
    provider_adjustments: tuple[Plb, ...] = ()
    misstate_claim: int | None = None  # index of a claim whose CLP04 is written 1 cent off

    @property
    def payment_minor(self) -> int:
        paid = sum(self._stated_paid(i) for i in range(len(self.claims)))
        return paid - sum(p.amount_minor for p in self.provider_adjustments)

    def _stated_paid(self, index: int) -> int:
        extra = 1 if index == self.misstate_claim else 0
        return self.claims[index].paid_minor + extra


def _cas(adjustments: tuple[Cas, ...]) -> list[str]:
    return [f"CAS*{a.group}*{a.reason}*{money(a.amount_minor)}" for a in adjustments]


def render_835(f: RemittanceFile) -> bytes:
    d8 = "%Y%m%d"
    body = [
        "ST*835*0001",
        f"BPR*I*{money(f.payment_minor)}*C*ACH*CCP*01*999999999*DA*123456*1512345678"
        f"**01*999988880*DA*98765*{f.paid_on.strftime(d8)}",
        f"TRN*1*{f.trace_number}*1512345678",
        f"DTM*405*{f.produced_on.strftime(d8)}",
        f"N1*PR*{f.payer_name.upper()}*XV*{f.payer_id}",
        f"N1*PE*{f.payee_name.upper()}*XX*{f.payee_npi}",
        "LX*1",
    ]
    for index, claim in enumerate(f.claims):
        body.append(
            f"CLP*{claim.claim_id}*{claim.status}*{money(claim.charge_minor)}"
            f"*{money(f._stated_paid(index))}*{money(claim.patient_responsibility_minor)}"
            f"*12*{claim.payer_claim_id}"
        )
        body += _cas(claim.adjustments)
        body.append(f"NM1*QC*1*{claim.patient_last}*****MI*{claim.patient_member_id}")
        for line in claim.lines:
            body.append(
                f"SVC*HC:{line.service_code}*{money(line.charge_minor)}"
                f"*{money(line.paid_minor)}**{line.units}"
            )
            body.append(f"DTM*472*{line.service_date.strftime(d8)}")
            body += _cas(line.adjustments)
    for plb in f.provider_adjustments:
        body.append(
            f"PLB*{f.payee_npi}*{f.produced_on.year}1231*{plb.reason}:{plb.reference}"
            f"*{money(plb.amount_minor)}"
        )
    body.append(f"SE*{len(body) + 1}*0001")
    control = f"{f.control_number:09d}"
    group = str(f.control_number % 1_000_000_000)
    sent = f.produced_on
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{f.payer_id:<15}*ZZ*{'CAREBUS':<15}"
        f"*{sent.strftime('%y%m%d')}*0600*^*00501*{control}*0*P*:"
    )
    segments = [
        isa,
        f"GS*HP*{f.payer_id}*CAREBUS*{sent.strftime(d8)}*0600*{group}*X*005010X221A1",
        *body,
        f"GE*1*{group}",
        f"IEA*1*{control}",
    ]
    return ("~\n".join(segments) + "~\n").encode()
