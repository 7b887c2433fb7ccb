"""End to end, the outbound side: a day of the SMALL network through all the services as
separate processes (real NATS and PostgreSQL), with the outbound feeds pointed at mock
receivers (tests/support/receivers.py) and the ops console watching for completed visits
without a charge.

* The billing system is down while the day is played (MLLP listener and FHIR endpoint) and
  comes back afterwards: every completion the validator forwards reaches it exactly once,
  by its site's channel, as the oracle counts them.
* Every remittance outcome and ERP answer is posted to the status webhook once; every
  provider, location and service change reaches both subscribed scheduling systems once.
* The ops console's open completed-without-charge work items (and exception records) are
  exactly the visits the oracle, from the scenario's inputs alone, says were never charged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest

from carebus_contracts import decode_message
from carebus_contracts import masterdata as md
from carebus_scenario.charge_watch import check_completed_without_charge
from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.observe import wait_quiet
from carebus_scenario.oracle import (
    completed_without_charge,
    expect,
    ready_to_bill,
    remittance_reports,
)
from carebus_scenario.outbound_check import check_outbound, snapshot
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.stack import ServiceStack, with_ack_wait
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.hl7.message import parse_message
from carebus_shared.jetstream.topology import ERP_POSTER, MAPPER
from tests.support.outbound import MAX_DELIVERIES, quick_topology
from tests.support.receivers import Receivers, mock_receivers
from tests.support.stacks import running_stack

pytestmark = pytest.mark.slow

SHORT_BACKOFF_S = (5.0, 10.0, 20.0, 60.0)


@dataclasses.dataclass
class Suite:
    stack: ServiceStack
    receivers: Receivers
    fhir_site: str


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(SMALL)


@pytest.fixture
async def suite(
    database_url: str, private_nats: NatsServer, tmp_path: Path, scenario: Scenario
) -> AsyncIterator[Suite]:
    topology = with_ack_wait(quick_topology(), ERP_POSTER, SHORT_BACKOFF_S)
    fhir_site = sorted(completed_without_charge(scenario).values() or ["SITE01"])[0]
    async with mock_receivers() as r:
        outbound = {
            "CAREBUS_OUTBOUND_BILLING_CHANNEL": "hl7",
            "CAREBUS_OUTBOUND_BILLING_SITE_CHANNELS": f"{fhir_site}=fhir",
            "CAREBUS_OUTBOUND_BILLING_MLLP_PORT": str(r.mllp.port),
            "CAREBUS_OUTBOUND_BILLING_FHIR_URL": r.fhir.url,
            "CAREBUS_OUTBOUND_STATUS_WEBHOOK_URL": r.webhook.url,
            "CAREBUS_OUTBOUND_MASTERDATA_SUBSCRIBERS": (
                f"SCHED-HL7=hl7:127.0.0.1:{r.sched_mllp.port},SCHED-FHIR=fhir:{r.sched_fhir.url}"
            ),
            "CAREBUS_OUTBOUND_ANSWER_TIMEOUT_S": "2",
            "CAREBUS_OUTBOUND_RETRY_BASE_S": "0.5",
            "CAREBUS_OUTBOUND_RETRY_MAX_S": "2",
            "CAREBUS_OUTBOUND_MAX_DELIVERIES": str(MAX_DELIVERIES),
        }
        console = {
            "CAREBUS_OPS_CONSOLE_FIGURES_REFRESH_S": "0.5",
            "CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H": "0",
        }
        async with running_stack(
            database_url,
            private_nats.url,
            tmp_path,
            topology=with_ack_wait(topology, MAPPER, SHORT_BACKOFF_S),
            extra_env={"outbound": outbound, "ops-console": console},
        ) as stack:
            # Up from the start: the webhook and the scheduling systems. The billing system
            # is down until the day has been played.
            r.webhook.up()
            r.sched_fhir.up()
            await r.sched_mllp.up()
            yield Suite(stack, r, fhir_site)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


async def _stream_count(nats_url: str, stream: str, wanted: Callable[[object], bool]) -> int:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.subscribe(">", stream=stream, ordered_consumer=True)
        found = 0
        for _ in range(total):
            msg = await sub.next_msg(timeout=5)
            found += wanted(decode_message(msg.subject, msg.data, msg.headers))
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def _billed(r: Receivers) -> Counter[str]:
    """Appointment id → messages the billing system took (PV1-19, the Encounter's id)."""
    visits: Counter[str] = Counter()
    for body in r.mllp.accepted.values():
        pv1 = next(s for s in parse_message(body).segments if s.name == "PV1")
        visits[str(pv1.value(19))] += 1
    for body in r.fhir.accepted.values():
        visits[msgspec.json.decode(body)["identifier"][0]["value"]] += 1
    return visits


async def test_outbound_feeds_and_completed_without_charge_as_the_oracle_says(
    suite: Suite, scenario: Scenario, tmp_path: Path
) -> None:
    stack, r = suite.stack, suite.receivers
    started, before = dt.datetime.now(dt.UTC), snapshot(r)
    expected = expect(scenario)
    endpoints = stack.endpoints
    await load_masterdata(scenario.network, endpoints.validator_http)
    report = await Player(scenario, endpoints, tmp_path / "play").play()
    assert report.surprises == []
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=180)
    assert r.mllp.received == []
    assert r.fhir.received == []

    # The billing system comes back: every completion, once, by its site's channel.
    await r.mllp.up()
    r.fhir.up()
    wanted = ready_to_bill(expected)
    assert sum(wanted.values()) >= 10  # the day has completions to tell of

    async def billed() -> bool:
        return sum(_billed(r).values()) >= sum(wanted.values())

    await _until(billed, "every completion at the billing system", 120)
    await asyncio.sleep(2.0)  # anything sent twice would arrive now
    assert _billed(r) == wanted
    assert r.mllp.duplicates == r.fhir.duplicates == 0
    assert len(r.mllp.received) == len(r.mllp.accepted)  # each sent once
    assert len(r.fhir.received) == len(r.fhir.accepted)
    assert r.fhir.accepted  # the FHIR site had completions too

    # Status back: one report per forwarded remittance line and per ERP answer.
    postings = sum(expected.journals.values())

    async def reported() -> bool:
        return len(r.webhook.accepted) >= remittance_reports(expected) + postings

    await _until(reported, "every status report at the webhook", 120)
    kinds = Counter(r.webhook.event_types)
    assert kinds == {
        "status.remittance.reported": remittance_reports(expected),
        "status.posting.reported": postings,
    }
    assert r.webhook.duplicates == 0

    # Master data out: each provider, location and service change at both systems, once.
    changes = await _stream_count(
        endpoints.nats_url,
        "MASTERDATA",
        lambda e: isinstance(e, md.ProviderChanged | md.LocationChanged | md.ServiceChanged),
    )
    assert changes > 0

    async def synced() -> bool:
        return len(r.sched_mllp.accepted) == len(r.sched_fhir.accepted) == changes

    await _until(synced, "every master data change at both scheduling systems", 120)
    assert r.sched_mllp.duplicates == r.sched_fhir.duplicates == 0

    # Completed without charge: the ops console's open work items are the oracle's.
    never_charged = completed_without_charge(scenario)
    assert never_charged  # the SMALL day has visits whose charges never come
    conn = await asyncpg.connect(endpoints.database_url)
    try:

        async def items() -> dict[str, str]:
            rows = await conn.fetch(
                "SELECT appointment_id, site FROM carebus_ops.charge_watch "
                "WHERE resolved_at IS NULL"
            )
            return {row["appointment_id"]: row["site"] for row in rows}

        async def settled() -> bool:
            return await items() == never_charged

        try:
            await _until(settled, "the open work items to be the oracle's", 60)
        except AssertionError:
            found = await items()
            missing = sorted(set(never_charged) - set(found))
            extra = sorted(set(found) - set(never_charged))
            raise AssertionError(f"work items differ: missing {missing}, extra {extra}") from None
        records = await conn.fetch(
            "SELECT site, count(*) AS n FROM carebus_exceptions.exception_record "
            "WHERE reason = 'completed_without_charge' AND status = 'open' GROUP BY site"
        )
        assert {row["site"]: row["n"] for row in records} == Counter(never_charged.values())
    finally:
        await conn.close()
    # What the demo prints and checks (the console here opens items at once).
    printed: list[str] = []
    problems = await check_completed_without_charge(
        endpoints.database_url, endpoints.console_http, scenario, printed.append
    )
    assert problems == []
    assert printed[-1].endswith("as the oracle says.")
    assert f"{len(never_charged)} visits" in printed[-1]

    # The demo's outbound summary says the same, feed by feed.
    printed.clear()
    problems = await check_outbound(
        r, expected, {suite.fhir_site}, endpoints.nats_url, started, before, printed.append
    )
    assert problems == []
    assert printed[-1] == "every outbound message delivered once."
    rows = {line.split("  ")[1].strip(): line.split()[-3:] for line in printed[2:7]}
    assert rows["status webhook (remittance and posting outcomes)"] == [
        f"{remittance_reports(expected) + postings:,}",
        f"{len(r.webhook.accepted):,}",
        "0",
    ]
    billing = [int(rows[k][1].replace(",", "")) for k in rows if k.startswith("billing")]
    assert sum(billing) == sum(wanted.values())
    assert rows["master data to SCHED-FHIR (FHIR)"][:2] == [f"{changes:,}"] * 2
