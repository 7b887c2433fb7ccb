"""Render a small balanced remittance description as 835 text, for property tests."""

from __future__ import annotations

from dataclasses import dataclass, field

Adjustments = list[tuple[str, str, int]]  # (group, carc, cents)


@dataclass(frozen=True)
class LineSpec:
    charge: int
    adjustments: Adjustments

    @property
    def paid(self) -> int:
        return self.charge - sum(amount for _, _, amount in self.adjustments)


@dataclass(frozen=True)
class ClaimSpec:
    patient_control_number: str
    charge: int
    adjustments: Adjustments
    lines: list[LineSpec] = field(default_factory=list)

    @property
    def paid(self) -> int:
        adjusted = sum(a for _, _, a in self.adjustments)
        adjusted += sum(a for line in self.lines for _, _, a in line.adjustments)
        return self.charge - adjusted


@dataclass(frozen=True)
class RemittanceSpec:
    claims: list[ClaimSpec]
    provider_adjustments: list[tuple[str, int]]  # (reason code, cents)
    trim_zeros: bool = False

    @property
    def payment(self) -> int:
        return sum(c.paid for c in self.claims) - sum(a for _, a in self.provider_adjustments)


def money(cents: int, trim: bool) -> str:
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    text = f"{sign}{whole}.{rest:02d}"
    return text.rstrip("0").rstrip(".") if trim and "." in text else text


def _cas(adjustments: Adjustments, trim: bool) -> list[str]:
    segments = []
    groups = dict.fromkeys(group for group, _, _ in adjustments)
    for group in groups:
        triplets = [(c, a) for g, c, a in adjustments if g == group]
        for start in range(0, len(triplets), 6):
            chunk = triplets[start : start + 6]
            segments.append(
                "CAS*"
                + group
                + "".join(f"*{carc}*{money(a, trim)}*" for carc, a in chunk).rstrip("*")
            )
    return segments


def expected_adjustment_order(adjustments: Adjustments) -> Adjustments:
    """CAS segments group triplets by group code, so that is the order they are read back in."""
    groups = dict.fromkeys(group for group, _, _ in adjustments)
    return [adj for group in groups for adj in adjustments if adj[0] == group]


def render_835(spec: RemittanceSpec, *, overcharge_claim: int | None = None) -> str:
    """``overcharge_claim``: index of a claim whose CLP03 is rendered one cent too high."""
    trim = spec.trim_zeros
    body = [
        "ST*835*0001",
        f"BPR*I*{money(spec.payment, trim)}*C*CHK************20240102",
        "TRN*1*TRACE42*1999999999",
        "DTM*405*20240101",
        "N1*PR*ACME PAYER",
        "N1*PE*GOOD CLINIC*XX*1234567893",
        "LX*1",
    ]
    for index, claim in enumerate(spec.claims):
        charge = claim.charge + (1 if index == overcharge_claim else 0)
        body.append(
            f"CLP*{claim.patient_control_number}*1*{money(charge, trim)}*"
            f"{money(claim.paid, trim)}**12*CCN{index}"
        )
        body += _cas(claim.adjustments, trim)
        body.append("NM1*QC*1*DOE*JANE****MI*M123")
        for line in claim.lines:
            body.append(f"SVC*HC:99213:25*{money(line.charge, trim)}*{money(line.paid, trim)}**1")
            body.append("DTM*472*20240101")
            body += _cas(line.adjustments, trim)
    pairs = spec.provider_adjustments
    for start in range(0, len(pairs), 6):
        chunk = pairs[start : start + 6]
        body.append(
            "PLB*1234567893*20241231"
            + "".join(f"*{r}:REF{i}*{money(a, trim)}" for i, (r, a) in enumerate(chunk))
        )
    body.append(f"SE*{len(body) + 1}*0001")
    isa = (
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*"
        "00501*000000042*0*P*:"
    )
    return (
        "~\n".join(
            [
                isa,
                "GS*HP*SENDER*RECEIVER*20240101*1200*7*X*005010X221A1",
                *body,
                "GE*1*7",
                "IEA*1*000000042",
            ]
        )
        + "~\n"
    )
