"""Pure parts of the poster: circuit breaker, rate window, backoff, headers, journal events."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carebus_contracts import decode_as
from carebus_contracts.erp import JournalConfirmed, JournalPosted, JournalRejected
from carebus_contracts.subjects import partition_of, partition_token
from carebus_erp_poster.domain.circuit_breaker import BreakerState, CircuitBreaker
from carebus_erp_poster.domain.journals import JournalState, Posting, Status, outputs
from carebus_erp_poster.domain.rate_window import SlidingWindow, advertised_policy, retry_after_s
from carebus_shared.backoff import backoff_delay
from tests.support.erp_poster import journal


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_once_before_closing() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(3, 5.0, clock, changes.append)
    for _ in range(2):
        assert breaker.try_admit()
        breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.try_admit()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.try_admit()
    assert breaker.remaining_open_s() == pytest.approx(5.0)

    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_admit()  # the probe
    assert not breaker.try_admit()  # only one at a time
    breaker.record_failure()  # the probe failed: open again, for the full period
    assert breaker.state is BreakerState.OPEN
    assert breaker.remaining_open_s() == pytest.approx(5.0)

    clock.now += 5.0
    assert breaker.try_admit()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.try_admit()
    assert breaker.try_admit()
    assert breaker.opened_count == 2
    assert changes == [BreakerState.OPEN, BreakerState.OPEN, BreakerState.CLOSED]


def test_a_released_probe_lets_the_next_request_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.try_admit()
    breaker.release_probe()  # e.g. the probe was throttled (429): no verdict
    assert breaker.try_admit()


@given(
    limit=st.integers(min_value=1, max_value=30),
    window=st.sampled_from([0.5, 1.0, 2.0]),
    arrivals=st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=200),
)
def test_sliding_window_never_allows_more_than_the_limit_in_any_window(
    limit: int, window: float, arrivals: list[float]
) -> None:
    """Requests wanting to go at arbitrary times, each sent when the window allows it."""
    limiter = SlidingWindow(limit, window, margin=1.0)
    now, sent = 0.0, []
    for gap in arrivals:
        now += gap
        wait = limiter.wait_s(now)
        now += wait
        assert limiter.wait_s(now) == pytest.approx(0.0, abs=1e-9)
        limiter.record(now)
        sent.append(now)
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + window - 1e-9]
        assert len(in_window) <= limit


def test_sliding_window_waits_out_a_retry_after() -> None:
    limiter = SlidingWindow(100, 1.0)
    limiter.block_until(12.5)
    assert limiter.wait_s(10.0) == pytest.approx(2.5)
    assert limiter.wait_s(12.5) == 0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ratelimit-policy": "20;w=1"}, (20, 1.0)),
        ({"ratelimit-policy": "100;w=60"}, (100, 60.0)),
        ({"ratelimit-limit": "7"}, (7, 1.0)),
        ({"x-ratelimit-limit": "9"}, (9, 1.0)),
        ({}, None),
        ({"ratelimit-policy": "lots"}, None),
    ],
)
def test_advertised_policy(headers: dict[str, str], expected: tuple[int, float] | None) -> None:
    assert advertised_policy(headers) == expected


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after_s("3", now) == 3.0
    assert retry_after_s("Fri, 14 Mar 2025 12:00:07 GMT", now) == pytest.approx(7.0)
    assert retry_after_s("Fri, 14 Mar 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    ceilings = [backoff_delay(n, 0.2, 5.0, rand=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    rng = random.Random(7)
    delays = [backoff_delay(4, 0.2, 5.0, rand=rng.random) for _ in range(500)]
    assert 0 <= min(delays) < 0.2
    assert 1.4 < max(delays) <= 1.6


def _state(status: Status = Status.PENDING) -> JournalState:
    posting = Posting(journal("dom", 1), stream_seq=42, subject="erp.journal.requested.v1.SITE01")
    at = dt.datetime(2025, 3, 14, 10, 0, tzinfo=dt.UTC)
    state = JournalState.for_posting(posting, "http").accepted("REQ-1", at)
    if status is Status.CONFIRMED:
        return state.confirmed("JV-00000001", "2025-03", at)
    if status is Status.REJECTED:
        return state.rejected("PERIOD-CLOSED", "posting period 2025-03 is closed", at)
    return state


def test_events_about_a_journal_have_deterministic_ids_and_growing_versions() -> None:
    pending, confirmed = _state(), _state(Status.CONFIRMED)
    [posted] = outputs(pending)
    posted_again, done = outputs(confirmed)
    assert posted.msg_id == posted_again.msg_id  # republished after a crash: deduplicated
    partition = partition_token(partition_of("JE-dom-1"))  # the journal's: one partition
    assert posted.subject == f"erp.journal.posted.v1.SITE01.{partition}"
    assert done.subject == f"erp.journal.confirmed.v1.SITE01.{partition}"
    p = decode_as(JournalPosted, posted.payload)
    c = decode_as(JournalConfirmed, done.payload)
    assert (p.erp_request_id, p.causation_id, p.entity_key) == ("REQ-1", "evt-dom-1", "JE-dom-1")
    assert (c.erp_document_number, c.fiscal_period) == ("JV-00000001", "2025-03")
    assert p.entity_version == 2
    assert c.entity_version == 3
    assert p.event_id == posted.msg_id


def test_a_rejection_bumps_the_attempt_so_a_redrive_uses_a_new_idempotency_key() -> None:
    rejected = _state(Status.REJECTED)
    assert (rejected.attempt, rejected.is_posted) == (1, False)
    event = decode_as(JournalRejected, outputs(rejected)[-1].payload)
    assert (event.error_code, event.retryable) == ("PERIOD-CLOSED", False)
    retry = Posting(journal("dom", 1), 43, "erp.journal.requested.v1.SITE01", attempt=1)
    assert retry.key == "JE-dom-1~1"
    assert Posting(journal("dom", 1), 1, "s").key == "JE-dom-1"
    # The rejected event belongs to the attempt it ended, so it is not confused with the next.
    assert outputs(rejected)[-1].msg_id != outputs(_state(Status.CONFIRMED))[-1].msg_id
