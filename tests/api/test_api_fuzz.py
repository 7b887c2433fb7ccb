"""Every HTTP route of every service, fuzzed from its own OpenAPI document by schemathesis:
bad input is a 4xx, never a server error.

The five services run as real processes on a private NATS and PostgreSQL. A fixed seed keeps
the generated cases the same from run to run, so a failure here is reproducible with the
command the test prints; `make fuzz` runs the same with many more cases.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carebus_scenario.stack import fresh_database
from carebus_shared.cli.services import discover
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support import auth
from tests.support.service_process import ServiceProcess, provision_topology, service_process

pytestmark = pytest.mark.slow

SEED = 20261207
EXAMPLES = int(os.environ.get("CAREBUS_FUZZ_EXAMPLES", "8"))
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SERVICES = {service.name: service for service in discover()}


@pytest.fixture(scope="module")
def running(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Every service as a process on a NATS server and a database of their own (what the
    fuzzer writes stays there); its base URL by name."""
    nats = NatsServer(tmp_path_factory.mktemp("fuzz-nats"))
    nats.start()
    db = asyncio.run(fresh_database(database_url, "carebus_fuzz"))
    asyncio.run(provision_topology(nats.url, TOPOLOGY))
    logs = tmp_path_factory.mktemp("fuzz-logs")
    processes: dict[str, ServiceProcess] = {}
    try:
        for name, service in SERVICES.items():
            processes[name] = service_process(service, nats.url, db, logs).start()
        for process in processes.values():
            process.wait_ready()
        yield {name: process.base for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.terminate()
        nats.stop()


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
