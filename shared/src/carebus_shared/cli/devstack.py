"""`carebus devstack`: NATS and PostgreSQL for development, unless the environment names some.

Data lives under ``<data-dir>/nats`` and ``<data-dir>/pg`` and survives restarts. Ports are
free ones picked on first start and reused while still free, so nothing collides with
servers already running on the machine (a system NATS on 4222, PostgreSQL on 5432).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.postgres_server import PostgresServer


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    database_url: str


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _remembered_port(state: dict[str, int], key: str) -> int | None:
    port = state.get(key)
    return port if port and _port_free(port) else None


def state_file(data_dir: Path) -> Path:
    return data_dir / "devstack.json"


def read_endpoints(data_dir: Path) -> Endpoints | None:
    """The endpoints a running devstack recorded, for `carebus status` and friends."""
    path = state_file(data_dir)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return Endpoints(state["nats_url"], state["database_url"])


@contextlib.contextmanager
def devstack(data_dir: Path) -> Iterator[Endpoints]:
    """Start whatever NATS_URL / DATABASE_URL do not already provide; stop it on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(data_dir)
    ports = json.loads(path.read_text()).get("ports", {}) if path.exists() else {}
    nats = pg = None
    nats_url = os.environ.get("NATS_URL")
    database_url = os.environ.get("DATABASE_URL")
    try:
        if not nats_url:
            nats = NatsServer(data_dir / "nats", _remembered_port(ports, "nats"))
            nats.start()
            nats_url = nats.url
        if not database_url:
            pg = PostgresServer(data_dir / "pg", _remembered_port(ports, "postgres"))
            pg.start()
            database_url = pg.dsn
        path.write_text(
            json.dumps(
                {
                    "nats_url": nats_url,
                    "database_url": database_url,
                    "ports": {"nats": nats.port if nats else 0, "postgres": pg.port if pg else 0},
                },
                indent=2,
            )
        )
        yield Endpoints(nats_url, database_url)
    finally:
        if pg is not None:
            pg.stop()
        if nats is not None:
            nats.stop()
