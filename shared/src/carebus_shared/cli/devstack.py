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
from dataclasses import dataclass, field
from pathlib import Path

from carebus_shared.cli.services import discover
from carebus_shared.db.roles import database_url_as
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.postgres_server import PostgresServer
from carebus_shared.jetstream.permissions import ADMIN_USER, all_permissions
from carebus_shared.jetstream.server_config import (
    load_or_create_passwords,
    render_authorization,
    with_credentials,
)

# PostgreSQL's administrator (the devstack's superuser), beside the services' roles.
ADMIN_ROLE = "postgres"


@dataclass(frozen=True)
class Endpoints:
    nats_url: str  # the administrator's (provision, status, replay)
    database_url: str
    # Each service's own NATS URL (its user), when the devstack runs NATS; else nats_url.
    service_nats_urls: dict[str, str] = field(default_factory=dict)
    # Each service's database role's password, when the devstack runs PostgreSQL
    # (docs/decisions/026): `carebus provision` sets them, each service logs in with its own.
    role_passwords: dict[str, str] = field(default_factory=dict)

    def nats_url_for(self, service: str) -> str:
        return self.service_nats_urls.get(service, self.nats_url)

    def database_url_for(self, role: str) -> str:
        """``role``'s URL when the devstack made its password; else the administrator's."""
        password = self.role_passwords.get(role)
        return database_url_as(self.database_url, role, password) if password else self.database_url


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
    service_urls: dict[str, str] = {}
    role_passwords: dict[str, str] = {}
    try:
        if not nats_url:
            # One user per service, its permissions generated (docs/decisions/024).
            users = all_permissions()
            passwords = load_or_create_passwords(
                data_dir / "nats" / "users.json", [user.user for user in users]
            )
            nats = NatsServer(
                data_dir / "nats",
                _remembered_port(ports, "nats"),
                extra_config=render_authorization(users, passwords),
            )
            nats.start()
            nats_url = with_credentials(nats.url, ADMIN_USER, passwords[ADMIN_USER])
            service_urls = {
                user.user: with_credentials(nats.url, user.user, passwords[user.user])
                for user in users
                if user.user != ADMIN_USER
            }
        if not database_url:
            roles = [service.schema for service in discover()]
            pg_passwords = load_or_create_passwords(
                data_dir / "pg" / "passwords.json", [ADMIN_ROLE, *roles]
            )
            pg = PostgresServer(
                data_dir / "pg",
                _remembered_port(ports, "postgres"),
                password=pg_passwords[ADMIN_ROLE],
            )
            pg.start()
            database_url = pg.dsn
            role_passwords = {role: pg_passwords[role] for role in roles}
        path.touch(mode=0o600)  # the administrators' passwords are in it
        path.chmod(0o600)
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
        yield Endpoints(nats_url, database_url, service_urls, role_passwords)
    finally:
        if pg is not None:
            pg.stop()
        if nats is not None:
            nats.stop()
