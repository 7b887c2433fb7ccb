"""Completed without charge, as the demo checks it: the ops console's open work items for
this day's visits (``carebus_ops.charge_watch``) against the oracle's, which it computes from
the scenario's inputs alone (``oracle.completed_without_charge``)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import asyncpg

from carebus_scenario.generator import Scenario
from carebus_scenario.model import AppointmentFact
from carebus_scenario.oracle import completed_without_charge
from carebus_shared.auth.client import bearer, cli_key

_OPEN = """
SELECT appointment_id, site FROM carebus_ops.charge_watch
 WHERE resolved_at IS NULL AND appointment_id = ANY($1::text[])
"""


async def _open_items(conn: asyncpg.Connection, ids: list[str]) -> dict[str, str]:
    return {row["appointment_id"]: row["site"] for row in await conn.fetch(_OPEN, ids)}


def _wait_hours(console_http: str) -> float | None:
    """The console's default wait for a charge (hours), from ``GET /v1/sites``."""
    try:
        # The key (CAREBUS_API_KEY) needs ops:read.
        request = urllib.request.Request(f"{console_http}/v1/sites", headers=bearer(cli_key()))
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        return float(body["thresholds_hours"]["completed_without_charge"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def check_completed_without_charge(
    database_url: str,
    console_http: str | None,
    scenario: Scenario,
    out: Callable[[str], None],
    timeout_s: float = 90.0,
) -> list[str]:
    """Wait (bounded) until the console's open items for this day equal the oracle's; print
    them per site; the differences. Nothing to compare when the ops console is not running,
    or waits longer for a charge than the day is old (then the oracle's count is printed)."""
    expected = completed_without_charge(scenario)
    by_site = Counter(expected.values())
    wait_h = None if console_http is None else await asyncio.to_thread(_wait_hours, console_http)
    if wait_h is None or wait_h > 0:
        sites = ", ".join(f"{site} {n}" for site, n in sorted(by_site.items())) or "none"
        when = "" if wait_h is None else f"; the ops console opens work items after {wait_h:g} h"
        out(f"completed without charge (the oracle): {len(expected)} visits ({sites}){when}")
        return []
    ids = sorted(
        {f.appointment_id for d in scenario.deliveries for f in d.facts
         if isinstance(f, AppointmentFact)}
    )  # fmt: skip
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('carebus_ops.charge_watch')") is None:
            return []
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # bounded: the console sweeps every few seconds
            found = await _open_items(conn, ids)
            if found == expected:
                break
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    per_site = ", ".join(f"{site} {n}" for site, n in sorted(Counter(found.values()).items()))
    out(
        f"completed without charge: {len(found)} visits ({per_site or 'none'}), work items and "
        "exception records in the ops console"
        + (", as the oracle says." if found == expected else ".")
    )
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    problems = [f"completed without charge: not found {a}" for a in missing]
    problems += [f"completed without charge: found but charged {a}" for a in extra]
    return problems
