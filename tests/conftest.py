"""Session fixtures: a real NATS server with JetStream and a real PostgreSQL.

Both start from pip packages on loopback and free ports, unless ``NATS_URL`` /
``DATABASE_URL`` point at existing servers. Tests that stop or kill a server start their
own private instance (``private_nats``) so they never disturb the shared one.

Every database on the server gets the tests' HTTP client (tests/support/auth.py), and the
services and scenario started by tests find its key in their environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.postgres_server import PostgresServer
from tests.support import auth
from tests.support.data_key import data_key  # noqa: F401 (a fixture for every test)
from tests.support.samples import SAMPLES

# The scenario and `carebus` commands read CAREBUS_API_KEY; the ops console forwards with its
# own key. Both are the tests' client (which holds actor:delegate, so the console's person
# is recorded).
os.environ["CAREBUS_API_KEY"] = auth.KEY
os.environ["CAREBUS_OPS_CONSOLE_SERVICE_KEY"] = auth.KEY


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample messages' folder (tests/data unless CAREBUS_SAMPLES says otherwise)."""
    return SAMPLES


@contextlib.contextmanager
def _server_dir(prefix: str) -> Iterator[Path]:
    """A data folder of this session's own: pytest's basetemp rotation (it keeps the last
    three) would delete a folder from under a server when several sessions run at once."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    external = os.environ.get("NATS_URL")
    if external:
        yield external
        return
    with _server_dir("carebus-nats-") as data:
        server = NatsServer(data)
        server.start()
        yield server.url
        server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server of this test's own, which the test may stop, kill and restart."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        asyncio.run(auth.grant_everywhere(external, template=False))
        yield external
        return
    with _server_dir("carebus-pg-") as data:
        server = PostgresServer(data, durable=False)
        server.start()
        asyncio.run(auth.grant_everywhere(server.dsn, template=True))
        yield server.dsn
        server.stop()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on the shared server, closed after the test."""
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()
