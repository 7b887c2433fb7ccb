"""`carebus clients add|list|revoke`: the HTTP clients and their scopes (docs/decisions/023).

A new key is printed once and never stored (only its SHA-256 is). Scopes come from
``--scope`` (repeatable) and ``--role`` (a named bundle: operator, admin, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg

from carebus_shared.auth import scopes as scope_names
from carebus_shared.auth import store
from carebus_shared.auth.keys import fingerprint
from carebus_shared.db.migrations import load_migrations, migrate


def add_parser(sub: Any) -> None:
    clients = sub.add_parser("clients", help="HTTP clients: API keys and their scopes")
    action = clients.add_subparsers(dest="action", required=True)
    add = action.add_parser("add", help="create a client; its key is printed once")
    add.add_argument("name")
    add.add_argument("--scope", action="append", default=[], choices=scope_names.ALL)
    add.add_argument("--role", action="append", default=[], choices=sorted(scope_names.ROLES))
    add.add_argument("--rate", type=float, help="requests a second per replica (else default)")
    add.add_argument("--burst", type=int, help="requests saved up (else the default)")
    action.add_parser("list", help="every client, its scopes, and whether it is revoked")
    revoke = action.add_parser("revoke", help="revoke a client's key (within the cache time)")
    revoke.add_argument("name")


def chosen_scopes(args: argparse.Namespace) -> tuple[str, ...]:
    picked = set(args.scope)
    for role in args.role:
        picked.update(scope_names.ROLES[role])
    return tuple(sorted(picked))


async def _connect(database_url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url, timeout=10)
    await migrate(conn, store.OWNER, load_migrations(store.PACKAGE))
    return conn


async def _run(args: argparse.Namespace, database_url: str) -> int:
    conn = await _connect(database_url)
    try:
        if args.action == "add":
            wanted = chosen_scopes(args)
            if not wanted:
                print("give at least one --scope or --role", file=sys.stderr)
                return 2
            try:
                key = await store.add(
                    conn, args.name, wanted, rate_per_s=args.rate, burst=args.burst
                )
            except store.ClientExists as exc:
                print(str(exc), file=sys.stderr)
                return 1
            except asyncpg.CheckViolationError:
                print("a name is letters, digits and . _ @ - (at most 100)", file=sys.stderr)
                return 2
            print(f"client {args.name}: {' '.join(wanted)}")
            print(f"key (shown once, keep it secret): {key}")
            return 0
        if args.action == "list":
            for client in await store.listing(conn):
                state = (
                    f"revoked {client.revoked_at:%Y-%m-%d %H:%M}" if client.revoked_at else "active"
                )
                rate = f"{client.rate_per_s:g}/s" if client.rate_per_s else "default rate"
                print(
                    f"{client.name:24} {state:24} {fingerprint(client.key_hash)}  {rate:14} "
                    f"{' '.join(client.scopes)}"
                )
            return 0
        if await store.revoke(conn, args.name):
            print(f"client {args.name} revoked (services refuse it within their cache time)")
            return 0
        print(f"no active client named {args.name}", file=sys.stderr)
        return 1
    finally:
        await conn.close()


def run(args: argparse.Namespace, database_url: str) -> int:
    return asyncio.run(_run(args, database_url))
