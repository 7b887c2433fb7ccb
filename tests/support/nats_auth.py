"""A NATS server of a test's own running `carebus nats-config`'s users and permissions, and
each user's URL on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.permissions import ADMIN_USER, all_permissions
from carebus_shared.jetstream.server_config import (
    load_or_create_passwords,
    render_authorization,
    with_credentials,
)


@dataclass(frozen=True)
class SecuredNats:
    server: NatsServer
    passwords: dict[str, str]

    def url_for(self, user: str) -> str:
        return with_credentials(self.server.url, user, self.passwords[user])

    @property
    def admin_url(self) -> str:
        return self.url_for(ADMIN_USER)

    def violations(self) -> list[str]:
        """The server log's permission-violation lines (publish and subscribe)."""
        log = self.server.data_dir / "nats-server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line for line in text.splitlines() if " Violation - " in line]


@contextmanager
def secured_nats(
    data_dir: Path, extra_config: str = "", scheme: str = "nats"
) -> Iterator[SecuredNats]:
    users = all_permissions()
    passwords = load_or_create_passwords(data_dir / "users.json", [u.user for u in users])
    server = NatsServer(
        data_dir,
        extra_config=render_authorization(users, passwords) + extra_config,
        scheme=scheme,
    )
    server.start()
    try:
        yield SecuredNats(server, passwords)
    finally:
        server.stop(kill=True)
