"""Amounts in integer minor units, and splitting one amount into parts that add up exactly.

An :class:`Amount` is money (``unit`` = an ISO 4217 code) or a statistical quantity (the rule
set's statistical unit, "XXX" by default: ISO 4217's code for "no currency"). A ``unit`` of
None is a plain number, which only an expression's literals produce.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class UnitMismatch(ValueError):
    """Two amounts of different currencies (or units) were combined."""


class Amount(msgspec.Struct, frozen=True):
    minor: int
    unit: str | None = None

    def combine_unit(self, other: Amount) -> str | None:
        if self.unit is None:
            return other.unit
        if other.unit is None or other.unit == self.unit:
            return self.unit
        raise UnitMismatch(f"cannot combine {self.unit} with {other.unit}")


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` (>= 0) in proportion to ``weights`` so the parts sum to ``total`` exactly.

    Each part is first rounded down; the minor units left over go one each to the parts
    with the largest fractional remainders, earlier parts first on a tie. So the rounding is
    explicit, deterministic, and never creates or loses a cent.
    """
    if total < 0:
        raise ValueError("split a non-negative total; apply the sign afterwards")
    if len(weights) == 1 and weights[0] > 0:
        return [total]  # the common case: one account per side
    weight_sum = sum(weights)
    if not weights or weight_sum <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        parts[i] += 1
    return parts
