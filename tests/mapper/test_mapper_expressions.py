"""The amount expression language and largest-remainder splitting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carebus_mapper.domain.amounts import Amount, UnitMismatch, split_largest_remainder
from carebus_mapper.domain.expressions import ExpressionError, MissingAmount, parse

AMOUNTS = {
    "paid": Amount(8000, "USD"),
    "adj_co": Amount(-2500, "USD"),
    "billed": Amount(12500, "USD"),
    "visits": Amount(1, "XXX"),
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("paid", 8000),
        ("paid + adj_co", 5500),
        ("billed - paid - adj_co", 7000),
        ("abs(adj_co)", 2500),
        ("-adj_co", 2500),
        ("paid * 2 - 100", 15900),
        ("3 * (billed - paid)", 13500),
        ("min(paid, billed)", 8000),
        ("max(paid, billed, 9000)", 12500),
        ("  paid  ", 8000),
    ],
)
def test_expressions_evaluate_in_minor_units(source: str, expected: int) -> None:
    value = parse(source).evaluate(AMOUNTS)
    assert value == Amount(expected, "USD")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__import__(os)", "unknown function '__import__'"),
        ("__import__('os')", 'unexpected character "\'"'),
        ("eval(paid)", "unknown function 'eval'"),
        ("paid.__class__", "unexpected character '.'"),
        ("paid / 2", "unexpected character '/'"),
        ("paid +", "end of expression"),
        ("(paid", "expected ')'"),
        ("paid paid", "unexpected 'paid'"),
        ("paid * billed", "two amounts cannot be multiplied"),
        ("abs(paid, billed)", "abs() takes one argument"),
        ("", "empty expression"),
        ("1.5 * paid", "unexpected character '.'"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse(source)


def test_an_error_names_the_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("paid + billed ? 2")
    assert caught.value.column == 15


def test_names_and_units_are_known_before_evaluation() -> None:
    expression = parse("abs(paid) + adj_co * 2")
    assert expression.names == {"paid", "adj_co"}
    assert expression.is_amount
    assert not parse("2 * 3").is_amount


def test_missing_amount_and_mixed_units_raise() -> None:
    with pytest.raises(MissingAmount) as caught:
        parse("paid + interest").evaluate(AMOUNTS)
    assert caught.value.name == "interest"
    with pytest.raises(UnitMismatch):
        parse("paid + visits").evaluate(AMOUNTS)


@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8).filter(
        lambda w: sum(w) > 0
    ),
)
def test_largest_remainder_splits_exactly_and_fairly(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = total * weight / weight_sum
        assert exact - 1 < part < exact + 1  # never more than one minor unit off
        if weight == 0:
            assert part == 0


def test_largest_remainder_gives_leftover_cents_to_the_largest_remainders() -> None:
    assert split_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert split_largest_remainder(10, [3, 3, 4]) == [3, 3, 4]
    assert split_largest_remainder(5, [1, 2]) == [2, 3]  # 1.67 → 2, 3.33 → 3
    with pytest.raises(ValueError, match="non-negative"):
        split_largest_remainder(-1, [1])
