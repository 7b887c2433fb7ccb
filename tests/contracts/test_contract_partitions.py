"""The subject partition: a stable hash of the partition key, in range, the last token; a
claim's charges and remittances in one partition (docs/decisions/030)."""

from __future__ import annotations

import subprocess
import sys
import zlib

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from carebus_contracts import REGISTRY, subject_for
from carebus_contracts import subjects as s
from carebus_contracts.billing import (
    AdjustmentPosted,
    ChargePosted,
    ChargeReversed,
    ClaimAdjudicatedV2,
    PaymentPosted,
)
from carebus_contracts.examples import build_examples
from carebus_contracts.scheduling import AppointmentBooked
from carebus_contracts.validated import ValidatedPaymentPosted

EXAMPLES = {type(event): event for event, _ in build_examples()}


@given(st.text(min_size=1, max_size=80))
def test_every_key_lands_in_range_and_always_in_the_same_partition(key: str) -> None:
    first = s.partition_of(key)
    assert 0 <= first < s.PARTITIONS
    assert s.partition_of(key) == first
    assert first == zlib.crc32(key.encode()) % s.PARTITIONS


def test_the_partition_is_the_same_in_another_process() -> None:
    """Not Python's hash(), which is salted per process (PYTHONHASHSEED)."""
    keys = [f"APPT-{n}" for n in range(50)]
    code = (
        "from carebus_contracts.subjects import partition_of;"
        f"print(','.join(str(partition_of(k)) for k in {keys!r}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == ",".join(str(s.partition_of(k)) for k in keys)


def test_keys_spread_over_every_partition() -> None:
    counts = [0] * s.PARTITIONS
    for n in range(6_000):
        counts[s.partition_of(f"APPT-{n}")] += 1
    assert min(counts) > 800  # an even share is 1,000


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=30))
def test_an_events_subject_ends_in_its_partition_and_filters_take_it(key: str) -> None:
    event = msgspec.structs.replace(EXAMPLES[AppointmentBooked], entity_key=key)
    subject = subject_for(event)
    tokens = subject.split(".")
    assert len(tokens) == 6
    assert s.partition_in(subject) == s.partition_of(key)
    assert s.site_of(subject) == s.site_token(event.site)
    assert REGISTRY.for_subject(subject).type is AppointmentBooked
    assert REGISTRY.info(event).subject(event.site, key) == subject
    assert _matches(REGISTRY.info(event).subject_filter, subject)
    assert _matches(s.partition_filter("scheduling", s.partition_of(key)), subject)
    legacy = ".".join(tokens[:5])
    assert _matches(REGISTRY.info(event).subject_filter, legacy)
    assert _matches(s.legacy_filter("scheduling"), legacy)
    assert s.partition_in(legacy) is None


def test_a_claims_charges_and_remittances_share_its_partition() -> None:
    claim = "ENC-4711"
    charge = EXAMPLES[ChargePosted]
    posted = msgspec.structs.replace(
        charge, charge=msgspec.structs.replace(charge.charge, encounter_id=claim)
    )
    reversed_ = msgspec.structs.replace(
        EXAMPLES[ChargeReversed],
        charge=msgspec.structs.replace(EXAMPLES[ChargeReversed].charge, encounter_id=claim),
    )
    payment = msgspec.structs.replace(EXAMPLES[PaymentPosted], claim_id=claim)
    adjustment = msgspec.structs.replace(EXAMPLES[AdjustmentPosted], claim_id=claim)
    adjudicated = msgspec.structs.replace(EXAMPLES[ClaimAdjudicatedV2], claim_id=claim)
    events = (posted, reversed_, payment, adjustment, adjudicated)
    assert {s.partition_in(subject_for(e)) for e in events} == {s.partition_of(claim)}
    # Validated, they stay together for the mapper.
    validated = msgspec.structs.replace(EXAMPLES[ValidatedPaymentPosted], original=payment)
    assert s.partition_in(subject_for(validated)) == s.partition_of(claim)
    # Without a claim, the entity's own key decides.
    alone = msgspec.structs.replace(EXAMPLES[PaymentPosted], claim_id=None)
    assert alone.partition_key == alone.entity_key


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(have) == len(want)
