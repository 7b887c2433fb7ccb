"""Property: any balanced remittance rendered to X12 parses back balanced with the same amounts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebus_billing_adapter.adapters.x12 import RemittanceRejected, parse_835
from carebus_billing_adapter.domain.remittance_balancing import remittance_totals
from tests.support.x12_render import (
    ClaimSpec,
    LineSpec,
    RemittanceSpec,
    expected_adjustment_order,
    render_835,
)

cents = st.integers(min_value=-1_000_000, max_value=1_000_000)
adjustments = st.lists(
    st.tuples(
        st.sampled_from(["CO", "PR", "OA", "PI", "CR"]),
        st.sampled_from(["1", "2", "45", "A2", "253", "B13"]),
        cents,
    ),
    max_size=8,
)
lines = st.builds(LineSpec, charge=st.integers(0, 5_000_000), adjustments=adjustments)
claims = st.builds(
    ClaimSpec,
    patient_control_number=st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True),
    charge=st.integers(-5_000_000, 50_000_000),
    adjustments=adjustments,
    lines=st.lists(lines, max_size=3),
)
remittances = st.builds(
    RemittanceSpec,
    claims=st.lists(claims, max_size=5),
    provider_adjustments=st.lists(
        st.tuples(st.sampled_from(["WO", "CS", "L6", "72", "FB"]), cents), max_size=7
    ),
    trim_zeros=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(remittances)
def test_parse_of_rendered_balanced_remittance_balances_with_same_amounts(
    spec: RemittanceSpec,
) -> None:
    (remittance,) = parse_835(render_835(spec))
    assert remittance_totals(remittance).balances
    assert remittance.payment.amount_minor == spec.payment
    assert [
        (c.patient_control_number, c.charge_minor, c.paid_minor) for c in remittance.claims
    ] == [(c.patient_control_number, c.charge, c.paid) for c in spec.claims]
    for parsed, claim in zip(remittance.claims, spec.claims, strict=True):
        assert [(a.group, a.carc, a.amount_minor) for a in parsed.adjustments] == (
            expected_adjustment_order(claim.adjustments)
        )
        assert [(s.charge_minor, s.paid_minor) for s in parsed.service_lines] == [
            (line.charge, line.paid) for line in claim.lines
        ]
        for parsed_line, line in zip(parsed.service_lines, claim.lines, strict=True):
            assert [(a.group, a.carc, a.amount_minor) for a in parsed_line.adjustments] == (
                expected_adjustment_order(line.adjustments)
            )
    assert [(p.reason_code, p.amount_minor) for p in remittance.provider_adjustments] == (
        spec.provider_adjustments
    )


@settings(max_examples=50, deadline=None)
@given(remittances.filter(lambda spec: bool(spec.claims)), st.data())
def test_a_cent_off_in_any_claim_is_rejected(spec: RemittanceSpec, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(spec.claims) - 1))
    with pytest.raises(RemittanceRejected) as rejected:
        parse_835(render_835(spec, overcharge_claim=index))
    (issue,) = rejected.value.rejection.issues
    assert issue.reason == "claim_unbalanced"
    assert issue.patient_control_number == spec.claims[index].patient_control_number
    assert (issue.expected_minor, issue.actual_minor) == (
        spec.claims[index].paid + 1,
        spec.claims[index].paid,
    )
