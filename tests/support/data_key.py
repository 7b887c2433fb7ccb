"""A data key for tests that check kept inputs are sealed at rest (docs/decisions/028)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carebus_shared import crypto

KEY_LINE = crypto.new_key_line("test-1")


@pytest.fixture
def data_key() -> Iterator[crypto.Keyring]:
    """This process seals with a fresh key for the test (in-process services use it)."""
    ring = crypto.Keyring.parse(KEY_LINE)
    crypto.configure(ring)
    try:
        yield ring
    finally:
        crypto.reset()
