"""The demo's outbound check (issue #19, docs/decisions/025-outbound-feeds.md): what the
mock receivers took from the outbound feeds during this play, against what the oracle
expects, feed by feed, and whether every message was delivered once.

Only this play's messages count (a data folder of earlier runs may hold a backlog that
reaches the receivers first): completions by this day's appointment ids, status reports
by the time they were recorded, master data changes that arrived after the play began.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import msgspec
import nats

from carebus_contracts import decode_message
from carebus_contracts import masterdata as md
from carebus_scenario.model import AppointmentFact
from carebus_scenario.oracle import Expectation, ready_to_bill, remittance_reports
from carebus_scenario.receivers import HttpReceiver, MllpReceiver, Receiver, Receivers
from carebus_shared.hl7.message import parse_message

Print = Callable[[str], None]
WAIT_S = 120.0  # retries of a busy receiver back off; the demo waits this long at most
POLL_S = 0.5
SETTLE_S = 2.0  # anything sent twice would arrive within this


@dataclass(frozen=True)
class Feed:
    name: str
    expected: int
    received: int  # messages the receiver took, each once
    duplicates: int  # resends it recognised by control id
    once: bool  # what it took is exactly what the oracle expects, each once


def snapshot(receivers: Receivers) -> dict[str, set[str]]:
    """The control ids each scheduling system has taken so far (before the play)."""
    return {"sched_mllp": set(receivers.sched_mllp.accepted),
            "sched_fhir": set(receivers.sched_fhir.accepted)}  # fmt: skip


def _resends(receiver: Receiver, control_ids: Collection[str]) -> int:
    receipts = receiver.receipts()
    return sum(receipts[c] - 1 for c in control_ids)


def _appointment(receiver: Receiver, body: bytes) -> str:
    """The visit a billing readiness message is about: PV1-19 or the Encounter's identifier."""
    if isinstance(receiver, MllpReceiver):
        pv1 = next((s for s in parse_message(body).segments if s.name == "PV1"), None)
        return str(pv1.value(19)) if pv1 is not None else ""
    identifiers = msgspec.json.decode(body).get("identifier") or [{}]
    return str(identifiers[0].get("value", ""))


def _billing(receiver: Receiver, name: str, wanted: Counter[str]) -> Feed:
    taken = {c: _appointment(receiver, b) for c, b in list(receiver.accepted.items())}
    ours = {c: a for c, a in taken.items() if a in wanted}
    got = Counter(ours.values())
    return Feed(name, sum(wanted.values()), sum(got.values()), _resends(receiver, ours),
                got == wanted)  # fmt: skip


def _status(webhook: HttpReceiver, remittances: int, postings: int, since: dt.datetime) -> Feed:
    ours: dict[str, str] = {}
    for control_id, body in list(webhook.accepted.items()):
        event = msgspec.json.decode(body)
        if dt.datetime.fromisoformat(event["recorded_at"]) >= since:
            ours[control_id] = str(event.get("event_type", ""))
    kinds = Counter(ours.values())
    wanted = {"status.remittance.reported": remittances, "status.posting.reported": postings}
    once = {k: kinds[k] for k in wanted} == wanted and sum(kinds.values()) == sum(wanted.values())
    return Feed("status webhook (remittance and posting outcomes)", remittances + postings,
                len(ours), _resends(webhook, ours), once)  # fmt: skip


def _masterdata(receiver: Receiver, name: str, changes: int, before: set[str]) -> Feed:
    ours = set(receiver.accepted) - before
    return Feed(name, changes, len(ours), _resends(receiver, ours), len(ours) == changes)


async def masterdata_changes(nats_url: str, since: dt.datetime, timeout_s: float = 5.0) -> int:
    """Provider, location and service changes the validator published since ``since``."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info("MASTERDATA")).state.messages
        sub = await js.subscribe(">", stream="MASTERDATA", ordered_consumer=True)
        found = 0
        for _ in range(total):  # bounded by the stream's size
            msg = await sub.next_msg(timeout=timeout_s)
            event = decode_message(msg.subject, msg.data, msg.headers)
            changed = isinstance(event, md.ProviderChanged | md.LocationChanged | md.ServiceChanged)
            found += changed and event.recorded_at >= since
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def _sites(expected: Expectation) -> dict[str, str]:
    return {e.fact.appointment_id: e.fact.site for e in expected.events.values()
            if isinstance(e.fact, AppointmentFact)}  # fmt: skip


async def check_outbound(
    receivers: Receivers,
    expected: Expectation,
    fhir_sites: Collection[str],
    nats_url: str,
    since: dt.datetime,
    before: Mapping[str, set[str]],
    out: Print,
    wait_s: float = WAIT_S,
) -> list[str]:
    """Wait (bounded) until the receivers hold what the oracle expects, print the outbound
    summary, and return its problems (empty: every outbound message delivered once)."""
    wanted = ready_to_bill(expected)
    site = _sites(expected)
    by_hl7 = Counter({a: n for a, n in wanted.items() if site.get(a) not in fhir_sites})
    by_fhir = Counter({a: n for a, n in wanted.items() if site.get(a) in fhir_sites})
    postings = sum(expected.journals.values())
    changes = await masterdata_changes(nats_url, since)

    def feeds() -> list[Feed]:
        r = receivers
        return [
            _billing(r.mllp, "billing readiness, HL7 ADT^A03 over MLLP", by_hl7),
            _billing(r.fhir, "billing readiness, FHIR Encounter", by_fhir),
            _status(r.webhook, remittance_reports(expected), postings, since),
            _masterdata(
                r.sched_mllp,
                "master data to SCHED-HL7 (MFN over MLLP)",
                changes,
                before.get("sched_mllp", set()),
            ),
            _masterdata(
                r.sched_fhir,
                "master data to SCHED-FHIR (FHIR)",
                changes,
                before.get("sched_fhir", set()),
            ),
        ]

    deadline = time.monotonic() + wait_s
    for _ in range(int(wait_s / POLL_S) + 1):  # bounded
        if time.monotonic() > deadline or all(f.received >= f.expected for f in feeds()):
            break
        await asyncio.sleep(POLL_S)
    await asyncio.sleep(SETTLE_S)
    found = feeds()
    out("")
    heading = "outbound feeds (mock receivers on loopback)"
    out(f"{heading:<63}{'expected':>8}{'received':>10}{'duplicates':>12}")
    for feed in found:
        out(f"  {feed.name:<61}{feed.expected:>8,}{feed.received:>10,}{feed.duplicates:>12,}")
    out("  (duplicates: resends the receiver recognised by control id and took once)")
    problems = [
        f"outbound {f.name}: received {f.received}, expected {f.expected}"
        for f in found
        if not f.once
    ]
    if problems:
        out(f"outbound deliveries differ from the oracle in {len(problems)} feed(s).")
    else:
        out("every outbound message delivered once.")
    return problems
