"""The services as real processes on a NATS server and a database of their own, shared by
the API fuzz and the credential checks of this folder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from carebus_scenario.stack import fresh_database
from carebus_shared.cli.services import discover
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support.service_process import ServiceProcess, provision_topology, service_process

SERVICES = {service.name: service for service in discover()}


@pytest.fixture(scope="package")
def api_database(database_url: str) -> str:
    return asyncio.run(fresh_database(database_url, "carebus_fuzz"))


@pytest.fixture(scope="package")
def running(
    api_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Every service as a process on a NATS server and a database of their own (what the
    fuzzer writes stays there); its base URL by name."""
    nats = NatsServer(tmp_path_factory.mktemp("fuzz-nats"))
    nats.start()
    db = api_database
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
        try:
            stopped_late = []
            for process in processes.values():  # every one, even after one that overran
                try:
                    process.terminate()
                except AssertionError as exc:
                    stopped_late.append(str(exc))
            assert not stopped_late, "\n\n".join(stopped_late)
        finally:
            nats.stop()
