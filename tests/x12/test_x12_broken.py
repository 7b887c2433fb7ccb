"""Broken X12 built by mutating a valid 835 is rejected, each issue naming segment and element."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carebus_billing_adapter.adapters.x12 import Issue, RemittanceRejected, parse_835
from tests.support.x12 import replace_once
from tests.support.x12_repaired_samples import managed_care

CLAIM_1 = "CLP*5554555444*1*800.00*450.00*300.00*12*94060555410000~"


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(RemittanceRejected) as rejected:
        parse_835(text)
    return rejected.value.rejection.issues


def _swap(old: str, new: str) -> Callable[[str], str]:
    return lambda text: replace_once(text, old, new)


def _add_before_se(segment: str) -> Callable[[str], str]:
    return _swap("SE*26*112233~", f"{segment}~\nSE*27*112233~")


# (mutation, expected "reason@element" set, message of the first issue)
CASES: dict[str, tuple[Callable[[str], str], set[str], str]] = {
    "bad amount": (
        _swap("*800.00*450.00*300.00*", "*800.00*abc*300.00*"),
        {"invalid_amount@CLP04"},
        "CLP04 (segment 13): not a decimal amount",
    ),
    "three decimals": (
        _swap("*800.00*450.00*300.00*", "*800.00*450.001*300.00*"),
        {"invalid_amount@CLP04"},
        "CLP04 (segment 13): more than 2 decimal places",
    ),
    "exponent amount": (
        _swap("CAS*CO*A2*50.00~", "CAS*CO*A2*5E1~"),
        {"invalid_amount@CAS03"},
        "CAS03 (segment 14): not a decimal amount",
    ),
    "wrong SE count": (
        _swap("SE*26*", "SE*27*"),
        {"count_mismatch@SE01"},
        "SE01 (segment 28): segment count 27 does not match 26",
    ),
    "wrong SE control number": (
        _swap("SE*26*112233", "SE*26*112234"),
        {"control_number_mismatch@SE02"},
        "SE02 (segment 28): transaction control number does not match ST02 (segment 3)",
    ),
    "wrong GE control number": (
        _swap("GE*1*1~", "GE*1*2~"),
        {"control_number_mismatch@GE02"},
        "GE02 (segment 29): group control number does not match GS06 (segment 2)",
    ),
    "wrong GE count": (
        _swap("GE*1*1~", "GE*2*1~"),
        {"count_mismatch@GE01"},
        "GE01 (segment 29): transaction set count 2 does not match 1",
    ),
    "wrong IEA control number": (
        _swap("IEA*1*000000907", "IEA*1*000000908"),
        {"control_number_mismatch@IEA02"},
        "IEA02 (segment 30): interchange control number does not match ISA13 (segment 1)",
    ),
    "wrong IEA count": (
        _swap("IEA*1*", "IEA*3*"),
        {"count_mismatch@IEA01"},
        "IEA01 (segment 30): functional group count 3 does not match 1",
    ),
    "missing CLP04": (
        _swap("*800.00*450.00*300.00*", "*800.00**300.00*"),
        {"missing_element@CLP04"},
        "CLP04 (segment 13): required element is missing",
    ),
    "missing CLP01": (
        _swap("CLP*5554555444*", "CLP**"),
        {"missing_element@CLP01"},
        "CLP01 (segment 13): required element is missing",
    ),
    "truncated CLP": (
        _swap(CLAIM_1, "CLP*5554555444*1~"),
        {"missing_element@CLP03", "missing_element@CLP04"},
        "CLP03 (segment 13): required element is missing",
    ),
    "unknown claim status": (
        _swap("CLP*5554555444*1*", "CLP*5554555444*9*"),
        {"invalid_code@CLP02"},
        "CLP02 (segment 13): not one of 1, 19, 2, 20, 21, 22, 23, 25, 3, 4",
    ),
    "unknown adjustment group": (
        _swap("CAS*CO*A2*50.00~", "CAS*OI*A2*50.00~"),
        {"invalid_code@CAS01"},
        "CAS01 (segment 14): not one of CO, CR, OA, PI, PR",
    ),
    "CAS reason without amount": (
        _swap("CAS*CO*A2*50.00~", "CAS*CO*A2~"),
        {"missing_element@CAS03"},
        "CAS03 (segment 14): required element is missing",
    ),
    "unbalanced claim": (
        lambda t: _swap("BPR*I*945.00*", "BPR*I*955.00*")(
            _swap("*800.00*450.00*300.00*", "*800.00*460.00*300.00*")(t)
        ),
        {"claim_unbalanced@CLP04"},
        "CLP04 (segment 13): the claim does not balance: CLP03 charge 800.00 - adjustments "
        "350.00 = 450.00 expected, CLP04 paid is 460.00",
    ),
    "unbalanced service line": (
        _swap("SVC*HC:99211*800.00*500.00~", "SVC*HC:99211*800.00*510.00~"),
        {"service_line_unbalanced@SVC03"},
        "SVC03 (segment 16): service line 1 of the claim does not balance: SVC02 charge 800.00 - "
        "adjustments 300.00 = 500.00 expected, SVC03 paid is 510.00",
    ),
    "unbalanced BPR": (
        _swap("BPR*I*945.00*", "BPR*I*946.00*"),
        {"payment_unbalanced@BPR02"},
        "BPR02 (segment 4): payment does not balance: claim payments 945.00 - provider "
        "adjustments 0.00 = 945.00 expected, BPR02 is 946.00",
    ),
    "PLB not reflected in BPR": (
        _add_before_se("PLB*5544667733*20021231*WO:X1*10.00"),
        {"payment_unbalanced@BPR02"},
        "BPR02 (segment 4): payment does not balance: claim payments 945.00 - provider "
        "adjustments 10.00 = 935.00 expected, BPR02 is 945.00",
    ),
    "invalid BPR16 date": (
        _swap("*20020316~", "*20020230~"),
        {"invalid_date@BPR16"},
        "BPR16 (segment 4): not a valid calendar date",
    ),
    "unknown payment method": (
        _swap("BPR*I*945.00*C*ACH*", "BPR*I*945.00*C*WIR*"),
        {"invalid_code@BPR04"},
        "BPR04 (segment 4): not one of ACH, BOP, CHK, FWT, NON",
    ),
    "foreign currency": (
        lambda t: _swap("SE*26*", "SE*27*")(_swap("DTM*405*", "CUR*PR*CAD~\nDTM*405*")(t)),
        {"unsupported_currency@CUR02"},
        "CUR02 (segment 6): currency is not supported, only USD",
    ),
    "CAS before any claim": (
        lambda t: _swap("SE*26*", "SE*27*")(_swap("LX*1~", "LX*1~\nCAS*CO*45*1.00~")(t)),
        {"unexpected_segment@None"},
        "CAS (segment 13): claim adjustment outside a claim (header number (LX) loop)",
    ),
    "segment foreign to 835": (
        _add_before_se("HL*1**20*1"),
        {"unexpected_segment@None"},
        "HL (segment 28): segment is not part of an 835 remittance",
    ),
    "no payee": (
        lambda t: _swap("SE*26*", "SE*25*")(
            _swap("N1*PE*ACME MEDICAL CENTER*XX*5544667733~\n", "")(t)
        ),
        {"missing_segment@None"},
        "ST (segment 3): 835 has no N1*PE (payee identification) segment",
    ),
    "SE missing": (
        _swap("SE*26*112233~\n", ""),
        {"envelope_structure@None"},
        "GE (segment 28): ST (segment 3) has no SE",
    ),
    "short ISA06": (
        _swap("*000000005      *", "*000000005   *"),
        {"malformed_interchange@ISA06"},
        "ISA06 (segment 1): ISA is fixed width: element is 12 characters long, expected 15",
    ),
    "garbage segment": (
        _swap("LX*1~", "LX*1~\n#!junk~"),
        {"malformed_interchange@None"},
        "segment 13: not an X12 segment (no segment tag of 2-3 letters or digits)",
    ),
    "not X12 at all": (
        lambda t: "MSH|^~\\&|SENDER|" + t,
        {"not_x12@None"},
        "file does not start with an ISA, GS or ST segment",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_835_is_rejected_naming_segment_and_element(case: str) -> None:
    mutate, expected, first_message = CASES[case]
    issues = issues_of(mutate(managed_care()))
    assert {f"{issue.reason}@{issue.element}" for issue in issues} == expected
    assert issues[0].message == first_message


def test_the_base_of_the_mutations_is_valid() -> None:
    (remittance,) = parse_835(managed_care())
    assert remittance.payment.amount_minor == 94500


def test_unbalanced_claim_issue_carries_claim_and_figures() -> None:
    mutate, _, _ = CASES["unbalanced claim"]
    (issue,) = issues_of(mutate(managed_care()))
    assert issue.patient_control_number == "5554555444"
    assert (issue.expected_minor, issue.actual_minor) == (45000, 46000)
    assert (issue.segment_tag, issue.segment_position) == ("CLP", 13)


def test_every_failure_is_listed_not_just_the_first() -> None:
    text = managed_care()
    text = replace_once(text, "*800.00*450.00*300.00*", "*800.00*abc*300.00*")  # claim 1
    text = replace_once(text, "*1200.00*495.00*", "*1200.00*490.00*")  # claim 2
    text = replace_once(text, "SE*26*", "SE*99*")
    issues = issues_of(text)
    assert [f"{i.reason}@{i.element}" for i in issues] == [
        "count_mismatch@SE01",
        "invalid_amount@CLP04",
        "claim_unbalanced@CLP04",
    ]
    assert issues[2].patient_control_number == "8765432112"


def test_a_file_with_a_non_835_transaction_is_rejected_whole() -> None:
    text = managed_care()
    body = text[text.index("ST*835") : text.index("GE*")]
    second = body.replace("ST*835*112233", "ST*837*112234").replace("SE*26*112233", "SE*26*112234")
    text = replace_once(text, "GE*1*1~", second + "GE*2*1~")
    issues = issues_of(text)
    assert [(i.reason, i.element, i.segment_position) for i in issues] == [
        ("unsupported_transaction", "ST01", 29)
    ]
    assert issues[0].message == ("ST01 (segment 29): transaction set is not supported, only 835")


def test_a_run_of_stray_segments_is_one_issue_at_its_first_segment() -> None:
    """A megabyte of stray segments made one issue each (46,000 for a 1 MB file, seconds to
    build and a problem body nobody reads past the first)."""
    text = managed_care()
    strays = "".join(f"REF*ZZ*{n}~\n" for n in range(1_000))
    between = replace_once(text, "GE*1*1~", strays + "GE*1*1~")  # after SE, before GE
    (issue,) = issues_of(between)
    assert (issue.reason, issue.segment_position) == ("envelope_structure", 29)
    assert issue.message == (
        "REF (segment 29): segment outside a transaction set (ST/SE) "
        "(and any segments straight after it)"
    )
    after = text.rstrip("\n") + "\n" + strays
    (issue,) = issues_of(after)
    assert issue.message.endswith("segment after IEA closed the interchange (and any segments "
                                  "straight after it)")  # fmt: skip


def test_stray_runs_apart_are_each_reported() -> None:
    text = managed_care()
    text = replace_once(text, "GS*", "REF*ZZ*1~\nREF*ZZ*2~\nGS*")  # before the group
    text = replace_once(text, "GE*1*1~", "REF*ZZ*3~\nGE*1*1~")  # after the transaction
    issues = issues_of(text)
    assert [(i.reason, i.segment_position) for i in issues] == [
        ("envelope_structure", 2),
        ("envelope_structure", 31),
    ]
