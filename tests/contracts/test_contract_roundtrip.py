"""Property: every contract version round-trips through encode/decode unchanged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carebus_contracts import REGISTRY, ContractInfo, decode, encode, headers_for, subject_for
from tests.support.contract_strategies import events

CONTRACTS = REGISTRY.contracts()


@pytest.mark.parametrize("info", CONTRACTS, ids=[c.key for c in CONTRACTS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(info: ContractInfo, data: st.DataObject) -> None:
    event = data.draw(events(info.type))
    raw = encode(event)
    decoded = REGISTRY.decoder_for(info.event_type, info.major).decode(raw)
    assert decoded == event
    assert encode(decoded) == raw
    # The public path: headers and subject name this contract, and decode() gives the
    # same event (or, for an older major, its upcast: checked in test_contract_upcasting).
    headers = headers_for(event)
    assert headers["Carebus-Event-Type"] == info.event_type
    assert REGISTRY.for_subject(subject_for(event)) == info
    if REGISTRY.current(info.event_type) == info:
        assert decode(raw, info.event_type, headers["Carebus-Schema-Version"]) == event
