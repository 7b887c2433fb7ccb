"""National Provider Identifiers: ten digits, the last a Luhn check digit computed over the
nine others prefixed with the card issuer prefix 80840 (CMS NPI standard)."""

from __future__ import annotations

import random


def _luhn_sum(digits: str) -> int:
    total = 0
    # Doubling starts from the rightmost digit of the payload (the check digit is appended).
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def check_digit(first_nine: str) -> str:
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError(f"an NPI payload is nine digits, got {first_nine!r}")
    return str((10 - _luhn_sum("80840" + first_nine) % 10) % 10)


def is_valid(npi: str) -> bool:
    return len(npi) == 10 and npi.isdigit() and check_digit(npi[:9]) == npi[9]


def new_npi(rng: random.Random, taken: set[str]) -> str:
    """A valid NPI not in ``taken`` (individuals start with 1, organisations with 2)."""
    while True:
        payload = "1" + "".join(str(rng.randrange(10)) for _ in range(8))
        npi = payload + check_digit(payload)
        if npi not in taken:
            taken.add(npi)
            return npi
