"""Fixtures for the runtime tests: a private NATS with the echo topology, echo processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from echo_stage import CONSUMER, IN_STREAM, OUT_STREAM
from service_process import ServiceProcess, provision_topology

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.topology import TOPOLOGY, Topology

HERE = Path(__file__).resolve().parent
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


EchoFactory = Callable[[str, Path, float], ServiceProcess]


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
        return ServiceProcess([sys.executable, str(HERE / "echo_stage.py")], env, port, log)

    return make
