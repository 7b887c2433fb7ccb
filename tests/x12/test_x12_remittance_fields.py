"""What the reader extracts from real samples, money parsing, and tokenizer parity with pyx12."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from carebus_billing_adapter.adapters.x12.element_values import AmountError, parse_minor_units
from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.remittance_parser import parse_835
from carebus_billing_adapter.adapters.x12.tokenizer import tokenize
from carebus_billing_adapter.domain.remittance import AdjustmentGroup, ClaimStatus
from tests.support.samples import SAMPLES
from tests.support.x12 import LFH_835, is_x12, sample_files, sample_text
from tests.support.x12_repaired_samples import pyx12_reversals, secondary_payment


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0", 0), ("945.00", 94500), ("-1008.1", -100810), (".5", 50), ("12.", 1200), ("-0.01", -1)],
)
def test_amounts_become_integer_cents(text: str, cents: int) -> None:
    assert parse_minor_units(text) == cents


@pytest.mark.parametrize(
    "text", ["", "abc", "1,000.00", "+5", "1e3", " 5", "NaN", "1.001", "1.500"]
)
def test_anything_but_a_plain_decimal_with_two_places_is_refused(text: str) -> None:
    with pytest.raises(AmountError):
        parse_minor_units(text)


def test_medicare_part_a_fields() -> None:
    (r,) = parse_835(sample_text(f"{LFH_835}/medicare-part-a.835"))
    assert (r.sender_id, r.receiver_id, r.interchange_control_number) == (
        "000000005",
        "12345",
        "000000907",
    )
    assert (r.group_control_number, r.transaction_control_number) == ("1", "1234")
    assert r.implementation_version == "005010X221A1"
    p = r.payment
    assert (p.amount_minor, p.currency, p.handling_code, p.method) == (
        15_000_000,
        "USD",
        "C",
        "ACH",
    )
    assert (p.trace_number, p.date, p.production_date) == (
        "12345",
        dt.date(2002, 9, 13),
        dt.date(2002, 9, 16),
    )
    assert (r.payer.name, r.payer.id) == ("INSURANCE COMPANY OF TIMBUCKTU", "999")
    assert (r.payee.name, r.payee.npi, r.payee.tin) == (
        "REGIONAL HOPE HOSPITAL",
        "6543210903",
        None,
    )
    first = r.claims[0]
    assert (first.patient_control_number, first.payer_claim_control_number) == (
        "666123",
        "1999999444444",
    )
    assert first.status is ClaimStatus.PROCESSED_PRIMARY
    assert (first.charge_minor, first.paid_minor, first.patient_responsibility_minor) == (
        21_136_697,
        13_801_840,
        None,
    )
    assert [(a.group, a.carc, a.amount_minor) for a in first.adjustments] == [
        (AdjustmentGroup.CONTRACTUAL_OBLIGATION, "45", 7_334_857)
    ]
    assert first.patient is not None
    assert (first.patient.last_name, first.patient.id_qualifier, first.patient.id) == (
        "JONES",
        "HN",
        "666666666A",
    )
    assert (first.statement_from, first.statement_to) == (
        dt.date(2002, 8, 16),
        dt.date(2002, 8, 24),
    )
    (plb,) = r.provider_adjustments
    assert (plb.provider_id, plb.fiscal_period_date, plb.reason_code, plb.reference) == (
        "6543210903",
        dt.date(2002, 12, 31),
        "CV",
        "CP",
    )
    assert plb.amount_minor == -127


def test_service_lines_composites_and_multi_triplet_cas() -> None:
    (r,) = parse_835(secondary_payment())
    claim = r.claims[1]
    assert claim.rendering_provider_npi is None  # NM1*82 identified by BS, not XX
    first, second = claim.service_lines
    assert (first.procedure.qualifier, first.procedure.code, first.procedure.modifiers) == (
        "HC",
        "12345",
        ["26"],
    )
    assert (first.units, first.service_date) == (Decimal("1.00"), dt.date(2005, 1, 6))
    assert second.revenue_code == "220"
    assert [(a.group, a.carc, a.amount_minor) for a in second.adjustments] == [
        ("PR", "1", 15000),
        ("PR", "2", 7000),
        ("CO", "42", 8500),
    ]


def test_4010_reversal_and_correction() -> None:
    (r,) = parse_835(pyx12_reversals())
    assert r.implementation_version == "004010X091A1"
    reversal, correction, other = r.claims
    assert (reversal.status, reversal.is_reversal, reversal.charge_minor, reversal.paid_minor) == (
        ClaimStatus.REVERSAL,
        True,
        -31000,
        -21000,
    )
    assert reversal.service_lines[0].adjustments[0].group is AdjustmentGroup.CORRECTION_REVERSAL
    assert (correction.is_correction, correction.is_reversal) == (True, False)
    assert (other.is_reversal, other.service_lines[0].procedure.modifiers) == (True, ["TG"])
    assert [p.amount_minor for p in r.provider_adjustments] == [-100810, 2421, 595]
    assert r.payment.amount_minor == 46769


def _pyx12_view(text: str) -> list[str]:
    x12file = pytest.importorskip("pyx12.x12file")
    return [seg.format("~", "*", ":") for seg in x12file.X12Reader(io.StringIO(text))]


def _our_view(text: str) -> list[str]:
    tokens = tokenize(text, IssueLog())
    assert tokens is not None
    component = tokens.delimiters.component

    def element(value: str) -> str:
        return ":".join(value.split(component)).rstrip(":")

    def elements(tag: str, values: tuple[str, ...]) -> str:
        # ISA16 *is* the component separator: it must not be split like data.
        return "*".join(values if tag == "ISA" else map(element, values)).rstrip("*")

    return [f"{s.tag}*{elements(s.tag, s.elements)}~" for s in tokens.segments]


@pytest.mark.parametrize("name", [n for n in sample_files() if is_x12(SAMPLES / n)])
def test_tokenizer_agrees_with_pyx12(name: str) -> None:
    text = (SAMPLES / name).read_text()
    assert _our_view(text) == _pyx12_view(text)
