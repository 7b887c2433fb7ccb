"""The nats-server configuration `carebus nats-config` writes: one user per service with its
generated permissions (``permissions.py``), and a ``tls`` block when certificates are given.

Passwords come either from a secrets file (JSON ``{user: password}``, made with random
passwords when missing, mode 0600: the devstack) or, with ``passwords=None``, from the server's
environment (``$CAREBUS_NATS_PASSWORD_<USER>``, filled from a Kubernetes Secret or the
compose env file), so the config itself holds no secret.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from carebus_shared.jetstream.permissions import Permissions


@dataclass(frozen=True)
class ServerTls:
    cert_file: str
    key_file: str
    ca_file: str | None = None
    # Clients must present a certificate signed by ``ca_file``.
    verify_clients: bool = False


def password_env(user: str) -> str:
    """The environment variable holding ``user``'s password, e.g. CAREBUS_NATS_PASSWORD_MAPPER."""
    return "CAREBUS_NATS_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", user.upper())


def load_or_create_passwords(path: Path, users: Iterable[str]) -> dict[str, str]:
    """The passwords in ``path``, with a random one added for each user it lacks."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {user: known.get(user) or secrets.token_urlsafe(24) for user in users}
    if wanted != known:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({**known, **wanted}, out, indent=2)
    return {**known, **wanted}


def _strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def render_authorization(
    users: Iterable[Permissions], passwords: Mapping[str, str] | None = None
) -> str:
    """An ``authorization { users = [...] }`` block; env references when no passwords given."""
    lines = ["authorization {", "  users = ["]
    for user in users:
        secret = json.dumps(passwords[user.user]) if passwords else f"${password_env(user.user)}"
        lines += [
            f"    {{user: {json.dumps(user.user)}, password: {secret}, permissions: {{",
            f"      publish: {{allow: {_strings(user.publish)}}}",
            f"      subscribe: {{allow: {_strings(user.subscribe)}}}",
            "    }}",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def render_tls(tls: ServerTls) -> str:
    lines = ["tls {", f"  cert_file: {json.dumps(tls.cert_file)}"]
    lines.append(f"  key_file: {json.dumps(tls.key_file)}")
    if tls.ca_file:
        lines.append(f"  ca_file: {json.dumps(tls.ca_file)}")
    if tls.verify_clients:
        lines.append("  verify: true")
    lines += ["  timeout: 2", "}"]
    return "\n".join(lines) + "\n"


def with_credentials(nats_url: str, user: str, password: str) -> str:
    """``nats_url`` (one or several, comma-separated) carrying ``user``'s credentials."""
    quoted = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    urls = []
    for one in nats_url.split(","):
        parts = urllib.parse.urlsplit(one.strip())
        host = parts.netloc.rsplit("@", 1)[-1]
        urls.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{quoted}@{host}")))
    return ",".join(urls)


def redacted(nats_url: str) -> str:
    """``nats_url`` without passwords, for printing."""
    return re.sub(r"//([^:/@,]+):[^@,]*@", r"//\1:***@", nats_url)
