"""Fixtures for the master-data validator tests: a private NATS with the carebus topology, a
database of this area's own, and the service running as a real process on both."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import nats
import pytest
from nats.js import JetStreamContext

from carebus_shared.auth.client import bearer
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support import auth
from tests.support.data_key import KEY_LINE
from tests.support.service_process import ServiceProcess

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
async def md_nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server = NatsServer(tmp_path_factory.mktemp("md-nats"))
    server.start()
    nc = await nats.connect(server.url)
    try:
        await provision(nc.jetstream(), TOPOLOGY)
    finally:
        await nc.close()
    yield server.url
    server.stop(kill=True)


@pytest.fixture(scope="module")
async def md_database_url(database_url: str) -> AsyncIterator[str]:
    """A fresh database on the shared server, so this module starts from empty tables."""
    name = f"md_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    parts = urlsplit(database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def md_service(
    md_nats_url: str, md_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    port = free_port()
    log = tmp_path_factory.mktemp("md-service") / "masterdata.log"
    env = {
        "NATS_URL": md_nats_url,
        "DATABASE_URL": md_database_url,
        "CAREBUS_MASTERDATA_VALIDATOR_HTTP_PORT": str(port),
        "CAREBUS_MASTERDATA_VALIDATOR_OUTBOX_POLL_S": "0.2",
        "CAREBUS_MASTERDATA_VALIDATOR_GAUGE_REFRESH_S": "0.3",
        "CAREBUS_MASTERDATA_VALIDATOR_BATCH_MAX_WAIT_S": "0.01",
        "CAREBUS_SHUTDOWN_GRACE_S": "5",
        "CAREBUS_DATA_KEY": KEY_LINE,  # kept inputs and failures sealed, as deployed
    }
    service = ServiceProcess([str(VENV_BIN / "carebus-masterdata"), "serve"], env, port, log)
    service.start()
    try:
        service.wait_ready(60)
        yield service
    finally:
        if service.process is not None and service.process.poll() is None:
            service.terminate(20)


@pytest.fixture
async def api(md_service: ServiceProcess, md_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A data steward's client: its name is who the history records."""
    key = await auth.client(md_database_url, "test-steward")
    async with httpx.AsyncClient(
        base_url=md_service.base, headers=bearer(key), timeout=10
    ) as client:
        yield client


@pytest.fixture
async def md_js(md_nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(md_nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
async def md_db(
    md_database_url: str, md_service: ServiceProcess
) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(md_database_url)
    try:
        yield conn
    finally:
        await conn.close()
