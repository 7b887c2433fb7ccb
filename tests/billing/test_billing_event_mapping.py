"""Pure mapping rules: 835 remittance → events (reversals, corrections, PLB, ids), FT1 → events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carebus_billing_adapter.adapters.dft_events import dft_events
from carebus_billing_adapter.adapters.hl7_dft import map_dft
from carebus_billing_adapter.adapters.x12 import normalized_digest, parse_835
from carebus_billing_adapter.adapters.x12.segments import Delimiters, Segment
from carebus_billing_adapter.domain.remittance_events import (
    RemittanceContext,
    contract_units,
    posted_total_minor,
    remittance_event_chunks,
    remittance_events,
)
from carebus_contracts import billing as b
from carebus_shared.hl7.errors import Hl7MappingError

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CONTEXT = RemittanceContext(site="S1", source_system="x12-835", timezone=dt.UTC, recorded_at=NOW)

# A reversal (CLP02=22) of claim A, its correction, a denial and provider-level adjustments.
ISA = (
    "ISA*00*          *00*          *ZZ*PAYER          *ZZ*CLINIC         *240101*1200*^*"
    "00501*000000007*0*P*:~\n"
)
REVERSAL_AND_CORRECTION = (
    ISA
    + """GS*HP*PAYER*CLINIC*20240101*1200*7*X*005010X221A1~
ST*835*0001~
BPR*I*130.00*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20240105~
TRN*1*EFT-77*1512345678~
DTM*405*20240104~
N1*PR*ACME PAYER~
REF*2U*ACME~
N1*PE*GOOD CLINIC*XX*1234567893~
LX*1~
CLP*A*22*-100.00*-80.00**12*ICN-A~
CAS*CO*45*-20.00~
CLP*A*1*100.00*90.00**12*ICN-A2~
CAS*CO*45*10.00~
CLP*B*4*50.00*0.00**12*ICN-B~
CAS*CO*29*50.00~
CLP*C*1*200.00*150.00*30.00*12*ICN-C~
SVC*HC:99213*200.00*150.00**1.5~
CAS*CO*45*20.00*1~
CAS*PR*1*30.00~
PLB*1234567893*20241231*L6:INT1*-5.00*WO:ICN-9*35.00~
SE*20*0001~
GE*1*7~
IEA*1*000000007~
"""
)


@pytest.mark.parametrize("claims_per_chunk", [1, 2, 3, 4, 100])
def test_a_files_events_come_a_few_claims_at_a_time_in_file_order(claims_per_chunk: int) -> None:
    (remittance,) = parse_835(REVERSAL_AND_CORRECTION)
    chunks = list(remittance_event_chunks(remittance, CONTEXT, claims_per_chunk))
    assert [e for chunk in chunks for e in chunk] == remittance_events(remittance, CONTEXT)
    claims_in = [sum(isinstance(e, b.ClaimAdjudicatedV2) for e in c) for c in chunks]
    assert all(n <= claims_per_chunk for n in claims_in)
    assert sum(claims_in) == 4
    # The provider-level adjustments come last: with the last claims, or alone after them.
    assert len(chunks) == 4 // claims_per_chunk + 1
    assert all(e.scope is not b.AdjustmentScope.PROVIDER for c in chunks[:-1] for e in c
               if isinstance(e, b.AdjustmentPosted))  # fmt: skip


def test_reversal_correction_denial_and_provider_adjustments() -> None:
    (remittance,) = parse_835(REVERSAL_AND_CORRECTION)
    events = remittance_events(remittance, CONTEXT)
    claims = [e for e in events if isinstance(e, b.ClaimAdjudicatedV2)]
    assert [(c.claim_id, c.status) for c in claims] == [
        ("A", b.ClaimStatus.REVERSED),
        ("A", b.ClaimStatus.PAID),
        ("B", b.ClaimStatus.DENIED),
        ("C", b.ClaimStatus.PAID),
    ]
    reversal, correction = claims[0], claims[1]
    assert reversal.totals.paid.amount_minor == -8000
    assert correction.entity_version > reversal.entity_version  # the correction wins
    assert all(c.payer_code == "ACME" and c.payment_reference == "EFT-77" for c in claims)
    (line,) = claims[3].service_lines
    assert (line.service_code, line.units, line.billed.amount_minor) == ("99213", 1, 20000)
    payments = [e for e in events if isinstance(e, b.PaymentPosted)]
    assert [(p.claim_id, p.amount.amount_minor) for p in payments] == [
        ("A", -8000),
        ("A", 9000),
        ("C", 15000),
    ]
    assert {p.method for p in payments} == {b.PaymentMethod.EFT}
    assert all(p.received_on == dt.date(2024, 1, 5) for p in payments)
    provider = [
        e
        for e in events
        if isinstance(e, b.AdjustmentPosted) and e.scope is b.AdjustmentScope.PROVIDER
    ]
    assert [(p.reason_code, p.reference, p.amount.amount_minor) for p in provider] == [
        ("L6", "INT1", -500),
        ("WO", "ICN-9", 3500),
    ]
    line_adjustment = next(
        e
        for e in events
        if isinstance(e, b.AdjustmentPosted) and e.scope is b.AdjustmentScope.SERVICE_LINE
    )
    assert (line_adjustment.claim_id, line_adjustment.quantity) == ("C", 1)
    assert posted_total_minor(events) == remittance.payment.amount_minor == 13000


def test_the_same_file_always_yields_the_same_event_ids() -> None:
    first = remittance_events(parse_835(REVERSAL_AND_CORRECTION)[0], CONTEXT)
    later = RemittanceContext(
        site="S1", source_system="x12-835", timezone=dt.UTC, recorded_at=NOW + dt.timedelta(7)
    )
    second = remittance_events(parse_835(REVERSAL_AND_CORRECTION)[0], later)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first)


@pytest.mark.parametrize(
    ("units", "expected"),
    [(None, 1), (Decimal(3), 3), (Decimal("2.0"), 2), (Decimal("1.5"), 1), (Decimal(0), 1)],
)
def test_contract_units(units: Decimal | None, expected: int) -> None:
    assert contract_units(units) == expected


def _dft(*ft1: str) -> str:
    return "\r".join(
        ["MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^P03|M1|P|2.5", "PID|1||MRN-9", *ft1]
    )


def test_unit_amount_times_quantity_and_adjustment_without_group() -> None:
    lines = map_dft(
        _dft("FT1|1|C1||20250310||CG|99213|||3||12.50", "FT1|2|A1||20250310||AJ|BADDEBT|||1|-7"),
        default_tz="UTC",
        default_currency="USD",
    )
    charge, adjustment = dft_events(lines, default_site="S1", recorded_at=NOW)
    assert isinstance(charge, b.ChargePosted)
    assert (charge.charge.units, charge.charge.amount.amount_minor) == (3, 3750)
    assert isinstance(adjustment, b.AdjustmentPosted)
    assert (adjustment.group_code, adjustment.reason_code) == (b.CarcGroup.OTHER, "BADDEBT")
    assert adjustment.amount.amount_minor == 700


@pytest.mark.parametrize(
    ("ft1", "where"),
    [
        ("FT1|1|||20250310||CD|99213|||1|10.00", "FT1-2"),  # a credit must name its charge
        ("FT1|1|C1||20250310||CG|99213|||1.5|10.00", "FT1-10"),  # fractional units
        ("FT1|1|C1||20250310||CG||||1|10.00", "FT1-7"),  # no service code at all
        ("FT1|1|A1||20250310||AJ||||1|10.00", "FT1-7"),  # an adjustment without a reason
    ],
)
def test_unmappable_lines_name_the_field(ft1: str, where: str) -> None:
    lines = map_dft(_dft(ft1), default_tz="UTC", default_currency="USD")
    with pytest.raises(Hl7MappingError) as error:
        dft_events(lines, default_site="S1", recorded_at=NOW)
    assert str(error.value.location) == where


def test_file_digest_ignores_separators_but_not_data() -> None:
    (plain,) = parse_835(REVERSAL_AND_CORRECTION)
    other = REVERSAL_AND_CORRECTION.replace("*", "|").replace(":", ">").replace("~\n", "~")
    (rewritten,) = parse_835(other)
    assert rewritten.file_digest == plain.file_digest
    # Data holding the digest's own control characters cannot pose as another file.
    colon = Delimiters(element="*", component=":", segment="~", repetition=None)
    gt = Delimiters(element="*", component=">", segment="~", repetition=None)
    composite = [Segment("SVC", ("HC:99213", "1.00"), 1)]
    same = [Segment("SVC", ("HC>99213", "1.00"), 1)]
    smuggled = [Segment("SVC", ("HC\x1f99213", "1.00"), 1)]
    assert normalized_digest(composite, colon) == normalized_digest(same, gt)
    assert normalized_digest(composite, colon) != normalized_digest(smuggled, gt)
