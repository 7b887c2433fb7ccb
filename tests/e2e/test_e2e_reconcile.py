"""End to end: `carebus reconcile` over days the five services played, as separate processes,
with real NATS and PostgreSQL. A clean day of the SMALL network reconciles with exit 0 (every
difference its faults make is explained by an exception record); a second day, with four
differences seeded the way they happen, reconciles with exit 1 and names exactly those:

* completed without charge: the billing system never sends the charges of one visit;
* charged without posting: one charge's journal request is lost on its way to the poster
  (deleted from the ERP stream while the poster is down);
* posted without confirmation: the ERP never confirms one posted journal;
* posted twice: one journal is booked again under its next attempt's key, as a re-drive
  that did not see the first booking would book it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from carebus_contracts import decode_message
from carebus_contracts.billing import ChargePosted, PaymentPosted
from carebus_contracts.erp import JournalEntryRequested
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.model import AdjustmentFact, AppointmentFact, ChargeFact, PaymentFact
from carebus_scenario.network import UNKNOWN_PAYER_EDI, UNKNOWN_PLAN_CODE
from carebus_scenario.observe import backlog, wait_quiet
from carebus_scenario.oracle import delivered_facts
from carebus_scenario.player import Player, PlayReport, load_masterdata
from carebus_scenario.stack import ServiceStack
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import ERP_POSTER
from tests.support.reconcile import differences
from tests.support.reconcile import reconcile as run_reconcile
from tests.support.stacks import running_stack

pytestmark = pytest.mark.slow

CLEAN = SMALL
SEEDED_DAY = SMALL.day + dt.timedelta(days=1)


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    async with running_stack(database_url, private_nats.url, tmp_path) as services:
        yield services


def reconcile(services: ServiceStack, day: dt.date, fmt: str = "json") -> tuple[int, str, str]:
    """(exit status, report, summary line) of `carebus reconcile` for ``day``."""
    done = run_reconcile(
        services.nats_url, services.database_url, "--date", day.isoformat(), "--format", fmt,
        "--settle", "0", "--charge-lag", "0",
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


async def play(scenario: Scenario, services: ServiceStack, workdir: Path) -> PlayReport:
    await load_masterdata(scenario.network, services.endpoints.validator_http)
    report = await Player(scenario, services.endpoints, workdir).play()
    assert report.surprises == []
    return report


# -- what the scenario itself says (independent of the code under test) ---------------------
facts = delivered_facts


def charged_visits(scenario: Scenario) -> set[str]:
    return {
        d.label.split()[-1]
        for d in scenario.deliveries
        if d.label.startswith("DFT charges ") and d.refusal is None
    }


def completed_without_charge(scenario: Scenario) -> set[str]:
    completed = {
        f.appointment_id
        for f in facts(scenario)
        if isinstance(f, AppointmentFact) and f.status == "completed"
    }
    return completed - charged_visits(scenario)


def unknown_payer(scenario: Scenario) -> tuple[set[str], dict[str, int]]:
    """Charges billed to a plan nobody cross-referenced (their ids), and how many non-zero
    payments and adjustments an unknown payer's 835 brings (the adapter derives their ids)."""
    charges: set[str] = set()
    remitted = {"paid_without_posting": 0, "adjusted_without_posting": 0}
    for f in facts(scenario):
        if isinstance(f, ChargeFact) and f.payer_code == UNKNOWN_PLAN_CODE:
            charges.add(f.charge_id)
        if isinstance(f, PaymentFact | AdjustmentFact) and f.payer_code == UNKNOWN_PAYER_EDI:
            kind = "paid" if isinstance(f, PaymentFact) else "adjusted"
            remitted[f"{kind}_without_posting"] += f.amount_minor != 0
    return charges, remitted


def without_charges_of(scenario: Scenario, appointment_id: str) -> Scenario:
    """The day with one visit's charges (and their credits, and repeats) never sent."""
    dropped = (f"DFT charges {appointment_id}", f"DFT credit {appointment_id}")
    kept = [d for d in scenario.deliveries if not d.label.startswith(dropped)]
    assert len(kept) < len(scenario.deliveries)
    return replace(scenario, deliveries=kept)


# -- finding ids in the suite, with the contracts only --------------------------------------
async def stream_events(nats_url: str, stream: str, subject: str) -> list[tuple[int, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        found = []
        try:
            for _ in range(total):
                try:
                    msg = await sub.next_msg(timeout=5)
                except TimeoutError:
                    break
                event = decode_message(msg.subject, msg.data, msg.headers)
                found.append((msg.metadata.sequence.stream, event))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def journal_requests_by_entity(nats_url: str) -> dict[str, tuple[int, str]]:
    """Billing entity id → (ERP stream sequence, journal id) of its posting's request."""
    entity_of = {}
    for _, event in await stream_events(nats_url, "BILLING", "billing.>"):
        if isinstance(event, ChargePosted):
            entity_of[event.event_id] = event.charge.charge_id
        elif isinstance(event, PaymentPosted):
            entity_of[event.event_id] = event.payment_id
    found = {}
    for seq, event in await stream_events(nats_url, "ERP", "erp.journal.requested.>"):
        if isinstance(event, JournalEntryRequested):
            for source in event.source_event_ids:
                if source in entity_of:
                    found[entity_of[source]] = (seq, event.journal_id)
    return found


async def wait_mapped(nats_url: str, timeout_s: float = 60.0) -> None:
    """Until every stage but the (stopped) poster has nothing pending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = {k: v for k, v in (await backlog(nats_url)).items() if k != ERP_POSTER}
        if not any(waiting.values()):
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"stages still busy: {waiting}")


_BOOK_AGAIN = """
WITH first AS (
    SELECT * FROM carebus_erp_poster.journal_entry WHERE idempotency_key = $1
), again AS (
    INSERT INTO carebus_erp_poster.journal_entry
        (idempotency_key, journal_id, company, site, posting_date, description,
         source_event_id, correlation_id)
    SELECT idempotency_key || '~1', journal_id, company, site, posting_date, description,
           source_event_id, correlation_id FROM first
    RETURNING entry_id
)
INSERT INTO carebus_erp_poster.journal_line
    (entry_id, line_number, account, side, amount_minor, currency, cost_centre, department,
     location, payer_class, provider, memo)
SELECT again.entry_id, l.line_number, l.account, l.side, l.amount_minor, l.currency,
       l.cost_centre, l.department, l.location, l.payer_class, l.provider, l.memo
  FROM again, first JOIN carebus_erp_poster.journal_line l USING (entry_id)
"""
_UNCONFIRM = """
UPDATE carebus_erp_poster.journal_status
   SET status = 'pending', confirmed_at = NULL, document_number = NULL,
       next_check_at = now() + interval '1 day'
 WHERE journal_id = $1 AND status = 'confirmed'
"""


async def test_reconcile_finds_exactly_the_seeded_differences(
    stack: ServiceStack, tmp_path: Path
) -> None:
    # Day 1, as generated: every difference its faults make is explained.
    clean = generate(CLEAN)
    await play(clean, stack, tmp_path / "clean")
    await wait_quiet(stack.nats_url, stack.database_url, timeout_s=120)
    status, out, err = reconcile(stack, CLEAN.day)
    assert status == 0, err + out
    found = differences(out)
    assert all(d["state"] == "explained" and d["exception_id"] for d in found), found
    by_kind: dict[str, set[str]] = {}
    for d in found:
        by_kind.setdefault(d["kind"], set()).add(d["entity_id"])
    charges, remitted = unknown_payer(clean)
    assert by_kind.pop("completed_without_charge") == completed_without_charge(clean)
    assert by_kind.pop("charged_without_posting") == charges
    assert {k: len(v) for k, v in by_kind.items()} == remitted

    # Day 2, seeded: one visit's charges are never sent.
    day2 = generate(CLEAN.with_(seed=CLEAN.seed + 7, day=SEEDED_DAY))
    visits = sorted(charged_visits(day2))
    unbilled = visits[0]
    day2 = without_charges_of(day2, unbilled)
    await asyncio.to_thread(stack.terminate, "erp-poster")
    await play(day2, stack, tmp_path / "seeded")
    await wait_mapped(stack.nats_url)
    requests = await journal_requests_by_entity(stack.nats_url)
    # The day's own charges: the opening ones (the earlier visits' that the 835s settle) post
    # on their service dates, weeks before the day reconciled.
    opening = {f.key for d in day2.deliveries if d.opening for f in d.facts}
    billed = sorted(
        f.charge_id
        for f in facts(day2)
        if isinstance(f, ChargeFact)
        and f.payer_code != UNKNOWN_PLAN_CODE
        and not f.reversal
        and f.key not in opening
    )
    payments = sorted(
        f.payment_id for f in facts(day2) if isinstance(f, PaymentFact) and f.payer_code is None
    )
    lost, twice, unconfirmed = billed[0], billed[-1], payments[0]
    # One journal request lost before the poster took it.
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.jetstream().delete_msg("ERP", requests[lost][0])
    finally:
        await nc.close()
    await asyncio.to_thread(stack.start, ["erp-poster"])
    await wait_quiet(stack.nats_url, stack.database_url, timeout_s=120)
    conn = await asyncpg.connect(stack.database_url)
    try:
        # One journal booked again; one confirmation that never came.
        lines_booked_again = await conn.execute(_BOOK_AGAIN, requests[twice][1])
        assert int(lines_booked_again.split()[-1]) >= 2
        assert await conn.execute(_UNCONFIRM, requests[unconfirmed][1]) == "UPDATE 1"
    finally:
        await conn.close()

    status, out, err = reconcile(stack, SEEDED_DAY)
    assert status == 1, err + out
    unexplained = {
        (d["kind"], d["entity"], d["entity_id"])
        for d in differences(out)
        if d["state"] == "unexplained"
    }
    assert unexplained == {
        ("completed_without_charge", "appointment", unbilled),
        ("charged_without_posting", "charge", lost),
        ("posted_without_confirmation", "payment", unconfirmed),
        ("posted_twice", "charge", twice),
    }
    (double,) = [d for d in differences(out) if d["kind"] == "posted_twice"]
    assert double["journal_ids"] == [requests[twice][1]]
    assert len(double["documents"]) == 2

    # The first day is untouched by the second; the table names the same ids.
    assert reconcile(stack, CLEAN.day)[0] == 0
    status, table, timing = reconcile(stack, SEEDED_DAY, "table")
    print(table, timing, sep="\n")
    assert status == 1
    for entity_id in (unbilled, lost, twice, unconfirmed):
        assert entity_id in table
