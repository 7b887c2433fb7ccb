"""Completed without charge, as the demo checks it: the ops console's open work items for
this day's visits (``carebus_ops.charge_watch``) against the oracle's, which it computes from
the scenario's inputs alone (``oracle.completed_without_charge``), for the visits completed
by the time of the check."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import asyncpg

from carebus_scenario.generator import Scenario
from carebus_scenario.model import AppointmentFact
from carebus_scenario.oracle import completed_without_charge, uncharged_completions
from carebus_shared.auth.client import bearer, cli_key

# The summary names at most this many differences; the returned list holds them all.
SHOWN_PROBLEMS = 10
# A visit completed this recently may still wait for the console's next sweep (every
# FIGURES_REFRESH_S, 15 s by default).
SWEEP_GRACE = dt.timedelta(seconds=30)
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


def _per_site(items: dict[str, str]) -> str:
    return ", ".join(f"{site} {n}" for site, n in sorted(Counter(items.values()).items()))


async def check_completed_without_charge(
    database_url: str,
    console_http: str | None,
    scenario: Scenario,
    out: Callable[[str], None],
    timeout_s: float = 90.0,
) -> list[str]:
    """Wait (bounded) until the console's open items for this day equal the oracle's; print
    them per site; the differences. Nothing to compare when the ops console is not running,
    or waits longer for a charge than the day is old (then the oracle's count is printed).

    The console opens an item once the completion time has passed (its wait, 0 here, runs
    from then): a visit of the day completing after the check is not expected yet, one
    completed within the last ``SWEEP_GRACE`` may or may not be open (the sweep is periodic)."""
    expected = completed_without_charge(scenario)
    wait_h = None if console_http is None else await asyncio.to_thread(_wait_hours, console_http)
    if wait_h is None or wait_h > 0:
        sites = _per_site(expected) or "none"
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
        problems: list[str] = []
        later: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline: the console sweeps every few seconds
            found = await _open_items(conn, ids)
            problems, later = compare(scenario, found, dt.datetime.now(dt.UTC))
            if not problems or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    out(
        f"completed without charge: {len(found)} visits ({_per_site(found) or 'none'}), work "
        "items and exception records in the ops console"
        + ("." if problems else ", as the oracle says.")
    )
    if later:
        out(
            f"  {len(later)} more complete later today ({_per_site(later)}): the console opens "
            "their work items once their completion time has passed"
        )
    for problem in problems[:SHOWN_PROBLEMS]:
        out(f"  {problem}")
    if len(problems) > SHOWN_PROBLEMS:
        out(f"  … and {len(problems) - SHOWN_PROBLEMS} more")
    return problems


def compare(
    scenario: Scenario, found: dict[str, str], now: dt.datetime
) -> tuple[list[str], dict[str, str]]:
    """The differences between the console's open items (``found``) and the oracle's at
    ``now``, and the oracle's visits that complete after ``now`` (not expected yet)."""
    expected = uncharged_completions(scenario)
    due = {a for a, fact in expected.items() if fact.at <= now}
    surely = {a for a, fact in expected.items() if fact.at <= now - SWEEP_GRACE}
    problems = [
        f"completed without charge: not found {a}" for a in sorted(set(surely) - set(found))
    ]
    for a in sorted(set(found) - set(due)):
        why = "opened before its completion time" if a in expected else "found but charged"
        problems.append(f"completed without charge: {why} {a}")
    return problems, {a: fact.site for a, fact in expected.items() if a not in due}
