"""The client store: PostgreSQL schema ``carebus_auth`` (one migration set, shared)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from carebus_shared.auth.keys import key_hash, new_key

OWNER: Final = "carebus_auth"
PACKAGE: Final = "carebus_shared.auth"


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    scopes: tuple[str, ...]
    rate_per_s: float | None
    burst: int | None
    created_at: datetime
    revoked_at: datetime | None
    key_hash: bytes


class ClientExists(ValueError):
    pass


_COLUMNS: Final = "name, scopes, rate_per_s, burst, created_at, revoked_at, key_hash"


def _client(row: asyncpg.Record) -> Client:
    return Client(
        row["name"], tuple(row["scopes"]), row["rate_per_s"], row["burst"], row["created_at"],
        row["revoked_at"], bytes(row["key_hash"]),
    )  # fmt: skip


async def add(
    conn: asyncpg.Connection,
    name: str,
    scopes: tuple[str, ...],
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
    key: str | None = None,
) -> str:
    """Create a client; return its key (the only time it is known). Raises ClientExists."""
    key = key or new_key()
    try:
        await conn.execute(
            "INSERT INTO carebus_auth.client (name, key_hash, scopes, rate_per_s, burst)"
            " VALUES ($1, $2, $3, $4, $5)",
            name, key_hash(key), sorted(set(scopes)), rate_per_s, burst,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ClientExists(f"a client named {name} exists already") from None
    return key


async def listing(conn: asyncpg.Connection) -> list[Client]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM carebus_auth.client ORDER BY name")
    return [_client(row) for row in rows]


async def revoke(conn: asyncpg.Connection, name: str) -> bool:
    """Revoke a client's key; False when no such active client."""
    done = await conn.execute(
        "UPDATE carebus_auth.client SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
        name,
    )
    return bool(done != "UPDATE 0")


async def by_hash(conn: asyncpg.Connection, digest: bytes) -> Client | None:
    """The active client whose key hashes to ``digest`` (an index lookup, no comparison)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM carebus_auth.client WHERE key_hash = $1 AND revoked_at IS NULL",
        digest,
    )
    return None if row is None else _client(row)


async def put(
    conn: asyncpg.Connection,
    name: str,
    scopes: tuple[str, ...],
    key: str,
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
) -> None:
    """Create or re-key a client (local set-ups and tests: `carebus run`, fixtures)."""
    await conn.execute(
        "INSERT INTO carebus_auth.client (name, key_hash, scopes, rate_per_s, burst)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET"
        " key_hash = EXCLUDED.key_hash, scopes = EXCLUDED.scopes,"
        " rate_per_s = EXCLUDED.rate_per_s, burst = EXCLUDED.burst, revoked_at = NULL",
        name, key_hash(key), sorted(set(scopes)), rate_per_s, burst,
    )  # fmt: skip
