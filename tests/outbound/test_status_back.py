"""Status back through the real outbound service: payment, denial and adjustment outcomes
and the ERP's confirmations and rejections become status events on their own subjects
(STATUS), and each is posted to the webhook once, through the webhook's outage and a replay
of the sources."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from carebus_contracts import billing as b
from carebus_contracts import decode_message, erp
from carebus_contracts import status as st
from carebus_contracts.envelope import Event
from carebus_contracts.subjects import STREAM_STATUS
from tests.support.mapper import AT, adjustment, claim, envelope, payment, validate
from tests.support.outbound import Stack, publish, until

pytestmark = pytest.mark.slow


def _sources() -> list[Event]:
    paid = msgspec.structs.replace(payment("PAY-9"), claim_id="CLM-9")
    denied = claim("CLM-8", b.ClaimStatus.DENIED)
    adjusted = msgspec.structs.replace(adjustment("ADJ-9"), claim_id="CLM-9")
    common = {"occurred_at": AT, "source_system": "carebus-erp-poster"}
    confirmed = erp.JournalConfirmed(
        **{**envelope("J-1-confirmed", "J-1", 2), **common},
        journal_id="J-1",
        erp_document_number="DOC-1",
        confirmed_at=AT + dt.timedelta(minutes=1),
    )
    rejected = erp.JournalRejected(
        **{**envelope("J-2-rejected", "J-2", 2), **common},
        journal_id="J-2",
        error_code="DIM-404",
        message="cost centre closed",
        retryable=False,
        rejected_at=AT + dt.timedelta(minutes=1),
    )
    return [validate(paid), validate(denied), validate(adjusted), confirmed, rejected]


async def _status_events(stack: Stack) -> list[Event]:
    """Every event on STATUS, in order (an ordered consumer: nothing left behind)."""
    nc = stack.js._nc  # the test's own connection
    js = nc.jetstream()
    total = (await js.stream_info(STREAM_STATUS)).state.messages
    if not total:
        return []
    sub = await js.subscribe("status.>", stream=STREAM_STATUS, ordered_consumer=True)
    try:
        found = []
        for _ in range(total):
            msg = await sub.next_msg(timeout=5)
            found.append(decode_message(msg.subject, msg.data, msg.headers))
        return found
    finally:
        await sub.unsubscribe()


async def test_outcomes_become_status_events_delivered_once_to_the_webhook(
    stack: Stack,
) -> None:
    sources = _sources()
    await publish(stack.js, sources)  # the webhook is down

    async def reported() -> bool:
        return len(await _status_events(stack)) == len(sources)

    await until(reported, "a status event per source")
    events = await _status_events(stack)
    by_source = {e.source_event_id: e for e in events}  # type: ignore[attr-defined]
    assert set(by_source) == {s.event_id for s in sources}
    outcomes = {
        (type(e).__name__, e.outcome.value)  # type: ignore[attr-defined]
        for e in events
    }
    assert outcomes == {
        ("RemittanceStatusReported", "paid"),
        ("RemittanceStatusReported", "denied"),
        ("RemittanceStatusReported", "adjusted"),
        ("PostingStatusReported", "confirmed"),
        ("PostingStatusReported", "rejected"),
    }
    denial = by_source[sources[1].event_id]
    assert isinstance(denial, st.RemittanceStatusReported)
    assert denial.claim_id == "CLM-8"
    assert denial.billed is not None
    assert (denial.amount.amount_minor, denial.billed.amount_minor) == (8000, 12500)
    rejection = by_source["J-2-rejected"]
    assert isinstance(rejection, st.PostingStatusReported)
    assert (rejection.journal_id, rejection.error_code) == ("J-2", "DIM-404")
    assert stack.webhook.received == []

    stack.webhook.up()

    async def delivered() -> bool:
        return len(stack.webhook.accepted) == len(sources)

    await until(delivered, "every status event posted to the webhook")
    assert sorted(stack.webhook.event_types) == sorted(
        ["status.remittance.reported"] * 3 + ["status.posting.reported"] * 2
    )
    posted = [msgspec.json.decode(body) for body in stack.webhook.accepted.values()]
    assert {p["event_id"] for p in posted} == {e.event_id for e in events}

    # The sources again (a replay): the same status ids, dropped by JetStream; nothing new
    # reaches the webhook.
    await publish(stack.js, sources, suffix="-replayed")

    async def handled() -> bool:
        # Three sources on VALIDATED and two on ERP, each published twice.
        wanted = {("VALIDATED", "outbound-status-remittance"): 6,
                  ("ERP", "outbound-status-posting"): 4}  # fmt: skip
        for (stream, durable), last in wanted.items():
            info = await stack.js.consumer_info(stream, durable)
            if (info.ack_floor.stream_seq or 0) < last:
                return False
        return True

    await until(handled, "the replayed sources handled")
    assert len(await _status_events(stack)) == len(sources)
    assert len(stack.webhook.received) == len(sources)
    assert stack.webhook.duplicates == 0
