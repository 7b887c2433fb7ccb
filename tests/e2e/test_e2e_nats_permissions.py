"""End to end with least privilege on: each service connects to NATS as its own generated
user (docs/decisions/024) and to PostgreSQL as its own role (docs/decisions/026), and a small
network's day still reaches the ledger exactly as the oracle says, with no permission
violation on the way."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest

from carebus_scenario.config import SMALL
from carebus_scenario.generator import generate
from carebus_scenario.observe import observe, wait_quiet
from carebus_scenario.oracle import expect
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.verify import differences
from carebus_shared.cli.services import discover
from carebus_shared.jetstream.topology import ERP_POSTER, MAPPER
from tests.e2e.conftest import SecuredStack
from tests.support import auth

pytestmark = pytest.mark.slow


async def test_a_day_runs_through_the_generated_permissions(
    secured_stack: SecuredStack, tmp_path: Path
) -> None:
    scenario = generate(SMALL)
    endpoints = secured_stack.services.endpoints
    await load_masterdata(scenario.network, endpoints.validator_http)
    report = await Player(scenario, endpoints, tmp_path / "play").play()
    assert report.surprises == []
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=120)
    observed = await observe(endpoints.database_url, endpoints.validator_http, endpoints.nats_url)
    assert differences(expect(scenario), observed) == []
    # The console reads every durable's state as its own user.
    assert endpoints.console_http is not None
    async with httpx.AsyncClient(
        base_url=endpoints.console_http, timeout=5, headers=auth.HEADERS
    ) as client:
        response = await client.get("/v1/pipeline")
    assert response.status_code == 200
    assert MAPPER in response.text
    assert ERP_POSTER in response.text
    assert secured_stack.nats.violations() == []
    # Every service did its part under its own database role, and only under it. A pool
    # that lost its one idle connection (a readiness probe timed out mid-query on a loaded
    # CI machine) opens another on its next probe, so each answers one first.
    services = secured_stack.services
    services.wait_ready(list(services.processes), timeout_s=30)
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        logged_in = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert {row["usename"] for row in logged_in} == {s.schema for s in discover()}
