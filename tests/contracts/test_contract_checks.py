"""The check every producer runs before publishing: contract rules, and text anyone can store."""

from __future__ import annotations

import msgspec
import pytest

from carebus_contracts.checks import ContractViolation, all_checked, checked
from carebus_contracts.examples import build_examples
from carebus_contracts.scheduling import AppointmentBooked


def _booked(**changes: object) -> AppointmentBooked:
    example = next(e for e, _ in build_examples() if isinstance(e, AppointmentBooked))
    return msgspec.structs.replace(example, **changes)


def test_a_valid_event_passes_unchanged() -> None:
    event = _booked()
    assert checked(event) is event
    assert all_checked([event, event]) == [event, event]


@pytest.mark.parametrize(
    ("text", "rule"),
    [("MRN\x00123", "NUL character"), ("MRN\ud800", "lone surrogate")],
    ids=["nul", "surrogate"],
)
def test_text_postgresql_cannot_store_is_refused_naming_the_field_not_the_value(
    text: str, rule: str
) -> None:
    event = _booked(source_system=text)
    with pytest.raises(ContractViolation) as refused:
        checked(event)
    assert refused.value.path == "$.source_system"
    assert rule in refused.value.reason
    assert "MRN" not in str(refused.value)


def test_a_literal_backslash_u0000_is_ordinary_text() -> None:
    event = _booked(source_system="C:\\u0000\\path")
    assert checked(event) is event


def test_a_constraint_only_decode_enforces_is_caught() -> None:
    with pytest.raises(ContractViolation) as refused:
        checked(_booked(event_id=""))
    assert refused.value.path == "$.event_id"
