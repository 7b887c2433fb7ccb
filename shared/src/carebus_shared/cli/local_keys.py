"""The keys `carebus run` makes for this machine: files under <data>/keys, mode 0600.

- ``admin.key``: every scope but actor:delegate; what the command line uses by default.
- ``ops-console.key``: the console's own key (re-drives and quarantine actions it forwards).
- ``demo.key``: what the demo scenario submits and imports with.
- ``prometheus.key``: metrics:read, for a Prometheus scraping this machine.
- ``data.key``: the data key sealing kept inputs at rest (docs/decisions/028).
A key kept from an earlier run is used again; a missing file gets a new key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import asyncpg

from carebus_shared import crypto
from carebus_shared.auth import scopes, store
from carebus_shared.auth.client import KEYS_DIR
from carebus_shared.auth.keys import key_hash, new_key
from carebus_shared.db.migrations import load_migrations, migrate

LOCAL_CLIENTS: Final[dict[str, tuple[str, ...]]] = {
    "admin": scopes.ROLES["admin"],
    "ops-console": scopes.ROLES["console-service"],
    "demo": (
        scopes.APPOINTMENTS_WRITE,
        scopes.CHARGES_WRITE,
        scopes.REMITTANCES_WRITE,
        scopes.MASTERDATA_READ,
        scopes.MASTERDATA_WRITE,
        scopes.EXCEPTIONS_READ,
        scopes.METRICS_READ,  # the player waits on the validator's view-size gauge
        scopes.OPS_READ,  # the charge check reads the console's wait for a charge
    ),
    "prometheus": scopes.ROLES["prometheus"],
}
# The demo plays a day quickly; the local clients are not throttled in practice.
_LOCAL_RATE_PER_S: Final = 10_000.0
_LOCAL_BURST: Final = 20_000


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    os.chmod(path, 0o600)


def ensure_data_key(data_dir: Path) -> Path:
    """This machine's data key file (made once; kept: rows sealed with it must open)."""
    path = data_dir / KEYS_DIR / "data.key"
    if not path.exists():
        _write_private(path, crypto.new_key_line("local-1"))
    return path


async def ensure_local_keys(database_url: str, data_dir: Path) -> dict[str, Path]:
    """Each local client's key file (made or kept); the client store agrees with it."""
    folder = data_dir / KEYS_DIR
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await migrate(conn, store.OWNER, load_migrations(store.PACKAGE))
        paths: dict[str, Path] = {}
        for name, granted in LOCAL_CLIENTS.items():
            path = folder / f"{name}.key"
            key = path.read_text().strip() if path.exists() else ""
            found = await store.by_hash(conn, key_hash(key)) if key else None
            if found is None or found.name != name or set(found.scopes) != set(granted):
                key = key or new_key()
                await store.put(
                    conn, name, granted, key, rate_per_s=_LOCAL_RATE_PER_S, burst=_LOCAL_BURST
                )
                _write_private(path, key)
            paths[name] = path
        return paths
    finally:
        await conn.close()
