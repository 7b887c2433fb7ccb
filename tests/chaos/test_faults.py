"""The recovery promises, one fault at a time (issue #16): each fault its own run on a fresh
stack, every event of the day classified by the independent checker. Safe runs must lose
nothing, double nothing and catch up within twice the outage; each unsafe run (a setting that
breaks a promise, injected through ``tests.chaos.service``) must be caught.

``make test`` runs the short version (:data:`tests.chaos.faults.SHORT`); ``make chaos`` all of
them (``CAREBUS_CHAOS=full``). See docs/decisions/017-fault-suite.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chaos import report
from tests.chaos.conftest import FAULTS
from tests.chaos.faults import Fault
from tests.chaos.runner import run_fault

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


def _id(fault: Fault) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fault.name.lower()).strip("-")


@pytest.mark.parametrize("fault", FAULTS, ids=[_id(f) for f in FAULTS])
async def test_fault(fault: Fault, database_url: str, tmp_path: Path) -> None:
    result = await run_fault(fault, tmp_path, database_url)
    report.RESULTS.append(result)
    assert result.failures() == [], "\n".join([*result.failures(), *result.problems, *result.notes])
