"""End to end: a small network's day through all five services, as separate processes, with
real NATS and PostgreSQL; the ledger must equal the oracle to the cent, and every fault must
end as the exception the oracle names. Then again with the ERP poster, and then the mapper,
SIGKILLed mid-run.

Each test gets its own NATS server and its own database, so what the suite holds is exactly
what the scenario put there. The ERP poster's and the mapper's ack deadlines are shortened
to 5 s in these stacks (production: 30 s) so that the messages a killed one held come back
quickly. The mapper case checks ordering: the entity-ordered stages allow one batch in
flight, so a dead instance's batch is redelivered before any later event of its entities.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from carebus_scenario.config import SMALL
from carebus_scenario.demo import play_and_check
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.observe import observe, wait_quiet
from carebus_scenario.oracle import Expectation, expect
from carebus_scenario.player import Player, PlayReport, load_masterdata
from carebus_scenario.stack import ServiceStack
from carebus_scenario.verify import differences

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(SMALL)


@pytest.fixture(scope="module")
def expected(scenario: Scenario) -> Expectation:
    return expect(scenario)


def test_the_small_scenario_exercises_every_fault(
    scenario: Scenario, expected: Expectation
) -> None:
    reasons = {reason for _, _, reason in expected.exceptions}
    assert reasons >= {
        "unknown_provider", "inactive_provider", "unknown_payer", "parse_error",
        "required_field_missing", "data_type_error", "claim_unbalanced",
    }  # fmt: skip
    assert expected.outcomes["stale"] >= 1  # out-of-order updates
    assert sum(d.duplicate for d in scenario.deliveries) >= 3
    assert {d.channel for d in scenario.deliveries} >= {
        "siu", "dft", "fhir", "csv", "835-upload", "835-inbox",
    }  # fmt: skip
    assert 300 <= scenario.events <= 1000
    assert len({site for site, _, _ in expected.ledger}) == SMALL.sites + 1  # + billing office


async def _play(
    scenario: Scenario, services: ServiceStack, workdir: Path, rate: float | None = None
) -> PlayReport:
    await load_masterdata(scenario.network, services.endpoints.validator_http)
    return await Player(scenario, services.endpoints, workdir, rate=rate).play()


async def _verify(services: ServiceStack, expected: Expectation) -> list[str]:
    endpoints = services.endpoints
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=120)
    observed = await observe(endpoints.database_url, endpoints.validator_http, endpoints.nats_url)
    return differences(expected, observed)


async def test_a_day_of_the_network_reaches_the_ledger_exactly_once(
    scenario: Scenario, expected: Expectation, stack: ServiceStack, tmp_path: Path
) -> None:
    report = await _play(scenario, stack, tmp_path / "play")
    assert report.surprises == []
    assert await _verify(stack, expected) == []

    # The `make run` demo's flow on top: another day into the same suite, checked against
    # its own oracle on what it posted, with the newcomer's summary.
    printed: list[str] = []
    another_day = SMALL.with_(seed=SMALL.seed + 1, sites=2, appointments_per_site=6)
    problems = await play_and_check(
        stack.endpoints, another_day, tmp_path / "demo", rate=None, out=printed.append
    )
    assert problems == []
    summary = "\n".join(printed)
    assert "the ledger equals the oracle, per site and account, to the cent." in summary
    assert "trial balance per site" in summary
    assert "unknown_provider" in summary
    assert "completed without charge" in summary  # the oracle's count, where it will show
    # Where to look next: the ops console first.
    first_look = printed[printed.index("where to look next") + 1].split()
    assert first_look[:2] == ["console", f"{stack.endpoints.console_http}/"]


@pytest.mark.parametrize("victim", ["erp-poster", "mapper"])
async def test_the_same_result_when_a_stage_is_killed_mid_run(
    victim: str, scenario: Scenario, expected: Expectation, stack: ServiceStack, tmp_path: Path
) -> None:
    endpoints = stack.endpoints
    # Offered at a steady 80 events/s, so the kill lands while inputs are still arriving.
    play = asyncio.create_task(_play(scenario, stack, tmp_path / "play", rate=80))
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        posted = 0
        for _ in range(600):  # bounded: 60 s
            posted = await conn.fetchval("SELECT count(*) FROM carebus_erp_poster.journal_entry")
            if posted >= expected.journal_count // 4 or play.done():
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert not play.done(), f"the play finished before the {victim} could be killed mid-run"
    assert 0 < posted < expected.journal_count
    await asyncio.to_thread(stack.kill, victim)
    await asyncio.sleep(0.5)  # inputs keep arriving while it is down
    await asyncio.to_thread(stack.start, [victim])
    report = await play
    assert report.surprises == []
    assert await _verify(stack, expected) == []
