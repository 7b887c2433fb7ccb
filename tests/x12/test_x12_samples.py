"""Every sample file (tests/data): X12 files meet the committed expectation table, anything
else is refused as not X12, and accepted remittances add up to the files' own totals."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from carebus_billing_adapter.adapters.x12 import RemittanceRejected, parse_835
from carebus_billing_adapter.domain.remittance import Remittance
from carebus_billing_adapter.domain.remittance_balancing import remittance_totals
from tests.support.samples import SAMPLES
from tests.support.x12 import is_x12, sample_files, source_folder
from tests.support.x12_repaired_samples import REPAIRED
from tests.support.x12_sample_expectations import ACCEPTED, EXPECTED_REJECTIONS

ALL_FILES = sample_files()
X12_FILES = [name for name in ALL_FILES if is_x12(SAMPLES / name)]
OTHER_FILES = [name for name in ALL_FILES if name not in X12_FILES]


def outcome(data: bytes | str) -> list[Remittance] | frozenset[str]:
    try:
        return parse_835(data)
    except RemittanceRejected as rejected:
        return frozenset(f"{i.reason}@{i.element}" for i in rejected.rejection.issues)


def test_the_table_covers_exactly_the_x12_samples() -> None:
    assert sorted(ACCEPTED.keys() | EXPECTED_REJECTIONS.keys()) == X12_FILES


@pytest.mark.parametrize("name", X12_FILES)
def test_x12_sample_outcome_matches_the_table(name: str) -> None:
    result = outcome((SAMPLES / name).read_bytes())
    if name in ACCEPTED:
        assert isinstance(result, list), result
        assert [(r.payment.amount_minor, len(r.claims)) for r in result] == ACCEPTED[name]
    else:
        assert result == EXPECTED_REJECTIONS[name]


@pytest.mark.parametrize("name", OTHER_FILES)
def test_non_x12_sample_is_refused_as_not_x12(name: str) -> None:
    assert outcome((SAMPLES / name).read_bytes()) == frozenset({"not_x12@None"})


def _declared_totals(text: str) -> tuple[int, int]:
    """BPR02 and the PLB sum read straight off the text, independent of the parser."""
    segments = [s.strip().split("*") for s in text.split("~") if s.strip()]
    payment = sum(int(Decimal(seg[2]) * 100) for seg in segments if seg[0] == "BPR")
    plb = sum(
        int(Decimal(amount) * 100)
        for seg in segments
        if seg[0] == "PLB"
        for amount in seg[4::2]
        if amount
    )
    return payment, plb


ACCEPTED_TEXTS = {name: (SAMPLES / name).read_text() for name in ACCEPTED} | {
    f"{name} (repaired)": repair() for name, repair in REPAIRED.items()
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_TEXTS))
def test_posted_payments_equal_the_files_own_totals(name: str) -> None:
    text = ACCEPTED_TEXTS[name]
    remittances = parse_835(text)
    declared_payment, declared_plb = _declared_totals(text)
    posted = sum(claim.paid_minor for r in remittances for claim in r.claims)
    assert posted == declared_payment + declared_plb
    for remittance in remittances:
        totals = remittance_totals(remittance)
        assert totals.balances
        assert totals.claim_payments_minor - totals.provider_adjustments_minor == declared_payment


def test_counts_per_source_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion on behaviour (the table does that): prints the per-folder summary."""
    counts: Counter[tuple[str, str]] = Counter()
    for name in ALL_FILES:
        result = outcome((SAMPLES / name).read_bytes())
        label = (
            "accepted"
            if isinstance(result, list)
            else "rejected:" + "+".join(sorted({issue.split("@")[0] for issue in result}))
        )
        counts[(source_folder(name), label)] += 1
    with capsys.disabled():
        print()
        for (folder, label), count in sorted(counts.items()):
            print(f"  {folder:50s} {label:60s} {count}")
    assert sum(counts.values()) == len(ALL_FILES)
