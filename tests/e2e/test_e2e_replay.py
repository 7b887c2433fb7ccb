"""Replaying the day into each stage, twice, while the five services run: the ledger still
equals the oracle to the cent, and nothing is posted, quarantined or recorded twice.

The stack's VALIDATED and ERP streams keep message ids for one second rather than two hours,
so what a replayed stage publishes again is not dropped by JetStream on its way to the next
stage: the next stage's own idempotency (the mapper's fencing, the poster's inbox and ledger
keys) must hold, as it must for a replay older than the duplicate window. The last round
replays VALIDATED into a mapper that runs the same rules under a new rule-set version.

If the assertion could not fail it would prove nothing: a doubled posting adds a journal
entry, which ``differences`` reports three ways (the site's journal count, the ledger's
debits and credits per account, entries against source events); a failure recorded again
shows in the exception counts; the first run of this test, before the fixes of this change,
failed on exactly those (docs/decisions/015).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.model import BILLING, SCHEDULING
from carebus_scenario.observe import observe, stream_messages, wait_quiet
from carebus_scenario.oracle import Expectation, expect
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.stack import ServiceStack
from carebus_scenario.verify import differences
from carebus_shared.cli.main import main as carebus
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import TOPOLOGY, Topology
from carebus_shared.replay import records
from tests.support import auth
from tests.support.mapper import copy_default_rules
from tests.support.stacks import running_stack

pytestmark = pytest.mark.slow

VALIDATED, ERP = "VALIDATED", "ERP"
# (stream, stage) for every stage a replay can go into.
ROUTES = (
    (SCHEDULING, "masterdata-validator"),
    (BILLING, "validator"),
    (VALIDATED, "mapper"),
    (ERP, "erp-poster"),
)


def with_duplicate_window(topology: Topology, streams: set[str], seconds: float) -> Topology:
    return replace(
        topology,
        streams=tuple(
            replace(s, duplicate_window_s=seconds) if s.name in streams else s
            for s in topology.streams
        ),
    )


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    async with running_stack(
        database_url,
        private_nats.url,
        tmp_path,
        topology=with_duplicate_window(TOPOLOGY, {VALIDATED, ERP}, 1),
    ) as services:
        yield services


def _replay(*args: str) -> str:
    """`carebus replay ...` in this process (in a thread: its own event loop); its output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = carebus(["replay", *args, "--actor", "e2e"])
    assert code == 0, out.getvalue()
    return out.getvalue()


async def _verified(stack: ServiceStack, expected: Expectation) -> list[str]:
    e = stack.endpoints
    await wait_quiet(e.nats_url, e.database_url, timeout_s=120)
    observed = await observe(e.database_url, e.validator_http, e.nats_url)
    return differences(expected, observed, check_streams=False)


async def test_replaying_the_day_into_every_stage_twice_changes_no_balance(
    stack: ServiceStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario: Scenario = generate(SMALL)
    expected = expect(scenario)
    e = stack.endpoints
    monkeypatch.setenv("NATS_URL", e.nats_url)
    monkeypatch.setenv("DATABASE_URL", e.database_url)
    since = dt.datetime.now(dt.UTC)
    await load_masterdata(scenario.network, e.validator_http)
    report = await Player(scenario, e, tmp_path / "play").play()
    assert report.surprises == []
    assert await _verified(stack, expected) == []
    until = dt.datetime.now(dt.UTC)
    day = await stream_messages(e.nats_url)

    printed: list[str] = []
    started = time.monotonic()
    for stream, stage in ROUTES:  # round 1: by sequence
        window = ["--from-seq", "1", "--to-seq", str(day[stream])]
        printed.append(
            await asyncio.to_thread(_replay, "--stream", stream, *window, "--into", stage)
        )
    assert await _verified(stack, expected) == []
    for stream, stage in ROUTES:  # round 2: by time
        window = ["--since", since.isoformat(), "--until", until.isoformat()]
        printed.append(
            await asyncio.to_thread(_replay, "--stream", stream, *window, "--into", stage)
        )
    assert await _verified(stack, expected) == []
    took = time.monotonic() - started

    # Round 3: the mapper under a new rule-set version (the same rules).
    rules = copy_default_rules(tmp_path / "rules")
    ruleset = rules / "ruleset.toml"
    ruleset.write_text(
        re.sub(r'^version = ".*"$', 'version = "2099.01.1"', ruleset.read_text(), flags=re.M)
    )
    stack.env["mapper"]["CAREBUS_MAPPER_RULES_DIR"] = str(rules)
    await asyncio.to_thread(stack.terminate, "mapper")
    await asyncio.to_thread(stack.start, ["mapper"])
    window = ["--from-seq", "1", "--to-seq", str(day[VALIDATED])]
    printed.append(
        await asyncio.to_thread(_replay, "--stream", VALIDATED, *window, "--into", "mapper")
    )
    assert await _verified(stack, expected) == []
    outcomes = await _mapper_outcomes(stack.endpoints.mapper_http, "2099.01.1")
    assert outcomes.get("journal", 0) == 0
    assert sum(outcomes.values()) == day[VALIDATED], outcomes  # every copy reached it

    # The day's originals went in twice more; each replay is on record, complete.
    held = await stream_messages(e.nats_url)
    assert held[SCHEDULING] == 3 * day[SCHEDULING]
    assert held[BILLING] == 3 * day[BILLING]
    conn = await asyncpg.connect(e.database_url)
    try:
        done = await records.recent(conn, 20)
    finally:
        await conn.close()
    assert [r.outcome for r in done] == ["completed"] * 9
    assert {r.actor for r in done} == {"e2e"}
    (requests,) = {r.read for r in done if r.stream == ERP}  # the poster's input only
    for r in done:
        read = requests if r.stream == ERP else day[r.stream]
        assert (r.read, r.republished, r.skipped, r.duplicates) == (read, read, 0, 0), r
    total = sum(r.republished for r in done[1:])
    print(f"\n{total} messages replayed in 8 replays and settled in {took:.1f} s")
    print("\n".join(printed))


async def _mapper_outcomes(mapper_http: str, version: str) -> dict[str, float]:
    """The mapper's events by outcome since it started, checking it runs ``version``."""
    async with httpx.AsyncClient(base_url=mapper_http, timeout=10, headers=auth.HEADERS) as client:
        text = (await client.get("/metrics")).text
    assert f'carebus_mapper_rule_set_info{{version="{version}"}} 1.0' in text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("carebus_mapper_events_total{"):
            outcome = re.search(r'outcome="([^"]+)"', line)
            assert outcome is not None
            found[outcome.group(1)] = found.get(outcome.group(1), 0) + float(line.split()[-1])
    return found
