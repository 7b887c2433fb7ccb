"""What a feed does with one message, whatever the channel: its deterministic key, the
receiver's answer, and the outcome for the stage (deliver once, retry with backoff, or keep
it as a dead letter with its reason). Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from carebus_shared.backoff import backoff_delay
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry

# A receiver's refusal is neither a bad contract nor an ERP's: its own category in the
# exception store (docs/decisions/025).
REFUSED_CATEGORY = "receiver_rejection"
EXHAUSTED_CATEGORY = "transport"


def control_id(feed: str, event_id: str, receiver: str = "") -> str:
    """The message's control id (HL7 MSH-10, FHIR Idempotency-Key): derived from the event
    it was built from (and the receiver, when a feed has several), so a resend after a
    crash carries the same id and the receiver recognises it. 20 characters, MSH-10's
    length in HL7 v2.3."""
    key = f"{feed}\x00{event_id}\x00{receiver}" if receiver else f"{feed}\x00{event_id}"
    digest = hashlib.blake2b(key.encode(), digest_size=9).hexdigest()
    return "CB" + digest


@dataclass(frozen=True, slots=True)
class Accepted:
    code: str  # AA / CA, or the HTTP status


@dataclass(frozen=True, slots=True)
class Refused:
    """The receiver answered and will not take it (AE/AR/CE/CR, HTTP 4xx)."""

    code: str
    reason: str  # bounded: receiver_error, receiver_reject, receiver_refused
    text: str  # the receiver's own words, cut short (no patient data is sent back to us)


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No answer that settles it: refused connection, timeout, HTTP 5xx/408/429."""

    why: str  # bounded: connect, timeout, closed, busy, bad_answer
    retry_after_s: float | None = None


Answer = Accepted | Refused | Unreachable


@dataclass(frozen=True, slots=True)
class Retrying:
    """How retries go: backoff between deliveries, and when a message is given up."""

    base_s: float
    max_s: float
    max_deliveries: int
    rand: Callable[[], float] | None = None

    def delay_s(self, delivered: int, retry_after_s: float | None) -> float:
        jitter = backoff_delay(delivered, self.base_s, self.max_s, *filter(None, [self.rand]))
        return max(jitter, retry_after_s or 0.0, 0.1)


def outcome(
    answer: Answer, delivered: int, retrying: Retrying, *, site: str, event_id: str, feed: str
) -> Outcome:
    if isinstance(answer, Accepted):
        return Forward()
    if isinstance(answer, Refused):
        return Reject(
            REFUSED_CATEGORY,
            answer.reason,
            f"{feed}: the receiver refused the message ({answer.code}): {answer.text[:200]}",
            site=site,
            event_id=event_id,
        )
    if delivered >= retrying.max_deliveries:
        return Reject(
            EXHAUSTED_CATEGORY,
            "deliveries_exhausted",
            f"{feed}: the receiver did not take the message in {delivered} deliveries "
            f"(last: {answer.why}); re-drive it once the receiver is back",
            site=site,
            event_id=event_id,
        )
    return Retry(retrying.delay_s(delivered, answer.retry_after_s))
