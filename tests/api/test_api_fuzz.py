"""Every HTTP route of every service, fuzzed from its own OpenAPI document by schemathesis:
bad input is a 4xx, never a server error.

The five services run as real processes on a private NATS and PostgreSQL. A fixed seed keeps
the generated cases the same from run to run, so a failure here is reproducible with the
command the test prints; `make fuzz` runs the same with many more cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carebus_shared.cli.services import discover
from tests.support import auth

pytestmark = pytest.mark.slow

SEED = 20261207
EXAMPLES = int(os.environ.get("CAREBUS_FUZZ_EXAMPLES", "8"))
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SERVICES = {service.name: service for service in discover()}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_route_answers_bad_input_with_a_server_error(
    running: dict[str, str], name: str, tmp_path: Path
) -> None:
    command = [
        str(SCHEMATHESIS), "run", f"{running[name]}/schema/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--header", f"Authorization: Bearer {auth.KEY}",
        "--no-color",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-6000:]}"
