"""v1 → v2 upcasting of billing.claim.adjudicated: a v2 consumer replays v1 history."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.errors import NotFoundError

from carebus_contracts import (
    REGISTRY,
    decode,
    decode_as,
    decode_message,
    encode,
    headers_for,
    subject_for,
)
from carebus_contracts.billing import ClaimAdjudicated, ClaimAdjudicatedV2, ClaimTotals
from carebus_contracts.examples import build_examples
from carebus_contracts.subjects import (
    STREAM_BILLING,
    STREAM_SUBJECTS,
    partition_of,
    partition_token,
)
from carebus_contracts.upcasting import UpcastError, upcast, upcaster

GOLDEN_V1 = (
    Path(__file__).resolve().parents[2]
    / "contracts"
    / "examples"
    / "billing.claim.adjudicated"
    / "v1.0"
)
V1 = next(e for e, _ in build_examples() if isinstance(e, ClaimAdjudicated))


def _v1_history() -> list[ClaimAdjudicated]:
    """The committed golden v1 messages plus variants (denied, no patient share)."""
    golden = [
        msgspec.json.decode(p.read_bytes(), type=ClaimAdjudicated)
        for p in sorted(GOLDEN_V1.glob("*.json"))
    ]
    assert golden, "golden v1 examples are missing"
    denied = msgspec.structs.replace(
        V1,
        event_id="evt-clm-denied",
        entity_version=2,
        status="denied",  # type: ignore[arg-type]
        paid=msgspec.structs.replace(V1.paid, amount_minor=0),
        patient_responsibility=None,
        adjustments=(),
    )
    return [*golden, msgspec.json.decode(encode(denied), type=ClaimAdjudicated)]


def _assert_faithful(old: ClaimAdjudicated, new: ClaimAdjudicatedV2) -> None:
    assert isinstance(new, ClaimAdjudicatedV2)
    assert new.schema_version == "2.1"  # the current minor of v2
    for name in (
        "event_id",
        "correlation_id",
        "entity_key",
        "entity_version",
        "occurred_at",
        "site",
    ):
        assert getattr(new, name) == getattr(old, name)
    assert new.status == old.status
    assert new.totals == ClaimTotals(
        billed=old.billed, paid=old.paid, patient_responsibility=old.patient_responsibility
    )
    assert new.claim_adjustments == old.adjustments
    assert new.service_lines == ()


def test_v1_bytes_decode_into_the_v2_consumer_type() -> None:
    for old in _v1_history():
        raw = encode(old)
        new = decode(raw, "billing.claim.adjudicated", "1.0")
        _assert_faithful(old, new)  # type: ignore[arg-type]
        assert decode_as(ClaimAdjudicatedV2, raw, "1.0") == new
        assert decode_message("billing.claim.adjudicated.v1.SITE01", raw) == new


def test_current_major_is_not_upcast() -> None:
    v2 = next(e for e, _ in build_examples() if isinstance(e, ClaimAdjudicatedV2))
    assert decode(encode(v2), "billing.claim.adjudicated", "2.0") == v2
    assert REGISTRY.current("billing.claim.adjudicated").type is ClaimAdjudicatedV2


def test_upcast_refuses_missing_steps_and_downcasts() -> None:
    with pytest.raises(UpcastError, match="from v2 to v3"):
        upcast(upcast(V1, 2), 3)
    with pytest.raises(UpcastError, match="downcast"):
        upcast(upcast(V1, 2), 1)


def test_upcasters_must_step_one_major_of_the_same_type() -> None:
    with pytest.raises(ValueError, match="one major to the next"):
        upcaster(ClaimAdjudicatedV2, ClaimAdjudicated)
    with pytest.raises(ValueError, match="duplicate"):
        upcaster(ClaimAdjudicated, ClaimAdjudicatedV2)(lambda old: old)  # type: ignore[arg-type, return-value]


async def test_v2_consumer_replays_v1_messages_over_jetstream(nats_url: str) -> None:
    site = f"REPLAY{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        history = [msgspec.structs.replace(e, site=site) for e in _v1_history()]
        partition = partition_token(partition_of(history[0].partition_key))
        v1_subject = f"billing.claim.adjudicated.v1.{site}.{partition}"
        try:
            stream = await js.find_stream_name_by_subject(v1_subject)
        except NotFoundError:
            await js.add_stream(name=STREAM_BILLING, subjects=[STREAM_SUBJECTS[STREAM_BILLING]])
            stream = STREAM_BILLING
        for old in history:
            assert subject_for(old) == v1_subject
            ack = await js.publish(subject_for(old), encode(old), headers=headers_for(old))
            assert not ack.duplicate
        # The event id is the dedup key: a re-sent v1 event is not stored twice.
        again = await js.publish(v1_subject, encode(history[0]), headers=headers_for(history[0]))
        assert again.duplicate
        v2 = msgspec.structs.replace(
            upcast(history[-1], 2), event_id="evt-clm-v2", entity_version=3
        )
        await js.publish(subject_for(v2), encode(v2), headers=headers_for(v2))

        # A consumer written for v2 subscribes to every major of the event type.
        sub = await js.pull_subscribe(f"billing.claim.adjudicated.*.{site}.>", stream=stream)
        messages = await sub.fetch(len(history) + 1, timeout=5)
        received = [decode_message(m.subject, m.data, m.headers) for m in messages]
        for m in messages:
            await m.ack()
        await sub.unsubscribe()
    finally:
        await nc.close()
    assert all(isinstance(e, ClaimAdjudicatedV2) for e in received)
    for old, new in zip(history, received[:-1], strict=True):
        _assert_faithful(old, new)  # type: ignore[arg-type]
    assert received[-1] == v2
