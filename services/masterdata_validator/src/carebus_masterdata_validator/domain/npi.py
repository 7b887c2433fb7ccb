"""The NPI check digit (CMS): Luhn over the NPI prefixed with the card issuer prefix 80840."""

from __future__ import annotations

NPI_PREFIX = "80840"


def looks_like_npi(value: str) -> bool:
    return len(value) == 10 and value.isascii() and value.isdigit()


def npi_check_digit_ok(npi: str) -> bool:
    """True when ``npi`` is ten digits whose last digit is the Luhn check of the rest."""
    if not looks_like_npi(npi):
        return False
    total = 0
    # Luhn from the right: the check digit is not doubled, the digit before it is, and so on.
    for position, char in enumerate(reversed(NPI_PREFIX + npi)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0
