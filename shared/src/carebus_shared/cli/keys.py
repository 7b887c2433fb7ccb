"""`carebus keys` and `carebus purge`: the data key sealing kept inputs, and their retention
(docs/decisions/028).

carebus keys new ID          print a new key line (id:base64) to put first in the key file
carebus keys open FILE       print a sealed file (a moved inbox file) to stdout
carebus keys rewrap          re-seal every kept input under the current key (after a rotation)
carebus purge [--resolved-days N] [--open-days N] [--inbox DIR]...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from carebus_shared import crypto, retention
from carebus_shared.cli.replay import actor_or_os_user

_REWRAP_PAGE = 500


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="the data key sealing kept inputs at rest")
    actions = keys.add_subparsers(dest="action", required=True)
    new = actions.add_parser("new", help="print a new key line")
    new.add_argument("id")
    opened = actions.add_parser("open", help="print a sealed file")
    opened.add_argument("file", type=Path)
    actions.add_parser("rewrap", help="re-seal kept inputs under the current key")
    purge = sub.add_parser("purge", help="null kept inputs and delete inbox files past retention")
    purge.add_argument(
        "--resolved-days", type=int,
        default=int(os.environ.get(retention.RESOLVED_DAYS_ENV, retention.DEFAULT_RESOLVED_DAYS)),
    )  # fmt: skip
    purge.add_argument(
        "--open-days", type=int,
        default=int(os.environ.get(retention.OPEN_DAYS_ENV, retention.DEFAULT_OPEN_DAYS)),
    )  # fmt: skip
    purge.add_argument("--inbox", type=Path, action="append", default=[])


def run_keys(args: argparse.Namespace, database_url: str | None) -> int:
    try:
        if args.action == "new":
            print(crypto.new_key_line(args.id))
            return 0
        if args.action == "open":
            sys.stdout.buffer.write(crypto.unseal(args.file.read_bytes()) or b"")
            return 0
        if database_url is None:
            print("carebus keys rewrap: DATABASE_URL is not set", file=sys.stderr)
            return 2
        print(asyncio.run(_rewrap(database_url)))
        return 0
    except crypto.DataKeyError as exc:
        print(f"carebus keys: {exc}", file=sys.stderr)
        return 1


async def _rewrap(database_url: str) -> str:
    ring = crypto.keyring()
    if ring is None:
        raise crypto.DataKeyError(f"no key configured ({crypto.KEY_ENV} or {crypto.KEY_FILE_ENV})")
    conn = await asyncpg.connect(database_url, timeout=10)
    done, last = 0, 0
    try:
        while True:  # bounded: ids only grow past ``last``
            rows = await conn.fetch(
                "SELECT id, raw, offending_value FROM carebus_exceptions.exception_record "
                "WHERE id > $1 AND raw IS NOT NULL ORDER BY id LIMIT $2",
                last, _REWRAP_PAGE,
            )  # fmt: skip
            for row in rows:
                if crypto.sealed_with(bytes(row["raw"])) != ring.current:
                    await conn.execute(
                        "UPDATE carebus_exceptions.exception_record SET raw = $2, "
                        "offending_value = $3 WHERE id = $1",
                        row["id"], crypto.seal(crypto.unseal(row["raw"])),
                        crypto.seal_text(crypto.unseal_text(row["offending_value"])),
                    )  # fmt: skip
                    done += 1
                last = int(row["id"])
            if len(rows) < _REWRAP_PAGE:
                break
    finally:
        await conn.close()
    return f"re-sealed {done} kept input(s) under data key {ring.current}"


def run_purge(args: argparse.Namespace, database_url: str) -> int:
    try:
        print(asyncio.run(_purge(database_url, args)).line())
    except ValueError as exc:
        print(f"carebus purge: {exc}", file=sys.stderr)
        return 2
    return 0


async def _purge(database_url: str, args: argparse.Namespace) -> retention.Purged:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await retention.purge(
            conn, resolved_days=args.resolved_days, open_days=args.open_days,
            inboxes=tuple(args.inbox), actor=actor_or_os_user(),
        )  # fmt: skip
    finally:
        await conn.close()
