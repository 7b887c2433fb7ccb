"""Fixtures for the runtime tests: a private NATS with the echo topology, echo processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.topology import TOPOLOGY, Topology
from tests.support.echo_stage import CONSUMER, IN_STREAM, OUT_STREAM
from tests.support.service_process import EchoFactory, ServiceProcess, provision_topology

REPO_ROOT = Path(__file__).resolve().parents[2]
ECHO_TOPOLOGY = Topology(
    streams=(IN_STREAM, OUT_STREAM, TOPOLOGY.stream("EXCEPTIONS"), TOPOLOGY.stream("ADVISORIES")),
    consumers=(CONSUMER, TOPOLOGY.consumer("exception-capture")),
)


@pytest.fixture
def echo_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:  # a failing set-up must not leave the server running
        asyncio.run(provision_topology(server.url, ECHO_TOPOLOGY))
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture
def echo_process(database_url: str) -> EchoFactory:
    """Make an echo stage process (not started) on the given NATS, slowed by delay_s."""

    def make(nats_url: str, log: Path, delay_s: float) -> ServiceProcess:
        port = free_port()
        env = {
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "ECHO_HTTP_PORT": str(port),
            "ECHO_DELAY_S": str(delay_s),
            "CAREBUS_SHUTDOWN_GRACE_S": "10",
        }
        # From the repository root, where tests is a package: python -m tests.support.echo_stage
        argv = [sys.executable, "-m", "tests.support.echo_stage"]
        return ServiceProcess(argv, env, port, log, cwd=REPO_ROOT)

    return make
