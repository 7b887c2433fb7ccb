"""The registry: one type per subject, subjects from the catalogue, cached decoders."""

from __future__ import annotations

import pytest

from carebus_contracts import (
    REGISTRY,
    ContractInfo,
    UnknownContractError,
    decode,
    decode_message,
    decoder_for,
    encode,
    headers_for,
    is_newer,
    subject_for,
)
from carebus_contracts.billing import ChargePosted, ClaimAdjudicatedV2
from carebus_contracts.examples import build_examples
from carebus_contracts.exceptions import ExceptionRaised
from carebus_contracts.subjects import STREAM_SUBJECTS

EXAMPLES = {type(event): event for event, _ in build_examples()}


def _captured_by(filter_subject: str, stream_subject: str) -> bool:
    assert stream_subject.endswith(".>")
    return filter_subject.startswith(stream_subject[:-1])


@pytest.mark.parametrize("info", REGISTRY.contracts(), ids=lambda c: c.key)
def test_each_contract_lives_in_exactly_one_stream(info: ContractInfo) -> None:
    streams = [
        name for name, subj in STREAM_SUBJECTS.items() if _captured_by(info.subject_filter, subj)
    ]
    assert streams == [info.stream]


def test_event_types_follow_domain_entity_event() -> None:
    for info in REGISTRY.contracts():
        assert info.event_type == f"{info.domain}.{info.entity}.{info.event}"
        assert info.type.__struct_config__.tag == info.event_type


def test_one_type_per_subject() -> None:
    subjects = [info.subject_filter for info in REGISTRY.contracts()]
    assert len(subjects) == len(set(subjects))
    assert REGISTRY.for_subject("billing.charge.posted.v1.SITE01").type is ChargePosted
    assert REGISTRY.for_subject("billing.charge.posted.v1.SITE01.p5").type is ChargePosted
    assert REGISTRY.for_subject("billing.claim.adjudicated.v2.X").type is ClaimAdjudicatedV2
    assert REGISTRY.for_subject("exceptions.mapper.mapping.v1.SITE01").type is ExceptionRaised


def test_subject_and_headers_of_an_event() -> None:
    event = EXAMPLES[ChargePosted]
    # The partition is the claim's (the charge's encounter), p3 for "ENC-77".
    assert event.partition_key == "ENC-77"
    assert subject_for(event) == "billing.charge.posted.v1.SITE01.p3"
    assert headers_for(event) == {
        "Nats-Msg-Id": "evt-ch-1",
        "Carebus-Event-Type": "billing.charge.posted",
        "Carebus-Schema-Version": "1.0",
    }


def test_exception_subject_comes_from_stage_and_reason() -> None:
    event = EXAMPLES[ExceptionRaised]
    assert subject_for(event) == "exceptions.masterdata_validator.masterdata.v1.SITE01.p2"
    assert headers_for(event)["Carebus-Event-Type"] == "exceptions.exception.raised"
    with pytest.raises(TypeError, match="subject_for"):
        REGISTRY.info(event).subject("SITE01", event.entity_key)


def test_site_is_sanitised_into_one_token() -> None:
    event = EXAMPLES[ChargePosted]
    import msgspec

    odd = msgspec.structs.replace(event, site="north campus.*")
    assert subject_for(odd) == "billing.charge.posted.v1.north_campus__.p3"


def test_decoders_are_cached() -> None:
    assert decoder_for("billing.charge.posted", 1) is decoder_for("billing.charge.posted", 1)


def test_decode_message_uses_headers_then_subject() -> None:
    event = EXAMPLES[ChargePosted]
    raw = encode(event)
    assert decode_message("billing.charge.posted.v1.SITE01", raw, headers_for(event)) == event
    assert decode_message("billing.charge.posted.v1.SITE01", raw, None) == event
    assert decode_message("billing.charge.posted.v1.SITE01", raw, {"Nats-Msg-Id": "x"}) == event


@pytest.mark.parametrize(
    ("event_type", "version", "message"),
    [
        ("billing.charge.posted", "9.0", "newer than this build"),
        ("billing.charge.teleported", "1.0", "unknown event type"),
        ("billing.claim.adjudicated", "3.1", "newer than this build"),
        ("billing.charge.posted", "one", "malformed schema version"),
    ],
)
def test_unknown_versions_are_refused(event_type: str, version: str, message: str) -> None:
    with pytest.raises(UnknownContractError, match=message):
        decode(b"{}", event_type, version)


def test_unknown_subjects_are_refused() -> None:
    with pytest.raises(UnknownContractError):
        REGISTRY.for_subject("billing.charge.posted")
    with pytest.raises(UnknownContractError, match="known majors: \\[1\\]"):
        REGISTRY.for_subject("billing.charge.posted.v7.SITE01")
    with pytest.raises(UnknownContractError, match="p<partition>"):
        REGISTRY.for_subject("billing.charge.posted.v1.SITE01.x")


def test_is_newer_drops_stale_updates() -> None:
    event = EXAMPLES[ChargePosted]
    assert is_newer(event, None)
    assert is_newer(event, event.entity_version - 1)
    assert not is_newer(event, event.entity_version)
    assert not is_newer(event, event.entity_version + 1)
