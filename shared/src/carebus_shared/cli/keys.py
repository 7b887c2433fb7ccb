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
import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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


@dataclass(frozen=True)
class _Sealed:
    """A table whose columns hold sealed values: bytea ones and text ones (``cbenc1:``)."""

    table: str
    key: str  # its primary key (paged on)
    first: int | str  # below every key
    blobs: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()


# Every sealed column (docs/decisions/028). The exception history's corrected bodies are
# append-only (only retention may null them): they keep their key until purged.
_SEALED: Final = (
    _Sealed("carebus_exceptions.exception_record", "id", 0, ("raw",), ("offending_value",)),
    _Sealed("carebus_masterdata_validator.parked_event", "id", 0, ("raw", "failures")),
    _Sealed("carebus_masterdata_validator.claim_index", "claim_id", "", texts=("patient_ref",)),
)


async def _rewrap(database_url: str) -> str:
    ring = crypto.keyring()
    if ring is None:
        raise crypto.DataKeyError(f"no key configured ({crypto.KEY_ENV} or {crypto.KEY_FILE_ENV})")
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        done = 0
        for sealed in _SEALED:
            if await conn.fetchval("SELECT to_regclass($1)", sealed.table) is not None:
                done += await _rewrap_table(conn, sealed, ring.current)
    finally:
        await conn.close()
    return f"re-sealed {done} kept input(s) under data key {ring.current}"


def _current(value: Any, text: bool, current: str) -> bool:
    if value is None:
        return True
    if text:
        return (
            bool(value.startswith(crypto.TEXT_PREFIX))
            and crypto.sealed_with(base64.b64decode(value[len(crypto.TEXT_PREFIX) :])) == current
        )
    return crypto.sealed_with(bytes(value)) == current


async def _rewrap_table(conn: asyncpg.Connection, sealed: _Sealed, current: str) -> int:
    columns = (*sealed.blobs, *sealed.texts)
    assignments = ", ".join(f"{c} = ${n}" for n, c in enumerate(columns, 2))
    done, last = 0, sealed.first
    while True:  # bounded: keys only grow past ``last``
        rows = await conn.fetch(
            f"SELECT {sealed.key}, {', '.join(columns)} FROM {sealed.table} "
            f"WHERE {sealed.key} > $1 ORDER BY {sealed.key} LIMIT $2",
            last, _REWRAP_PAGE,
        )  # fmt: skip
        for row in rows:
            stale = [c for c in sealed.blobs if not _current(row[c], False, current)]
            stale += [c for c in sealed.texts if not _current(row[c], True, current)]
            if stale:
                values: list[bytes | str | None] = [
                    crypto.seal(crypto.unseal(row[c])) for c in sealed.blobs
                ]
                values += [crypto.seal_text(crypto.unseal_text(row[c])) for c in sealed.texts]
                await conn.execute(
                    f"UPDATE {sealed.table} SET {assignments} WHERE {sealed.key} = $1",
                    row[sealed.key], *values,
                )  # fmt: skip
                done += 1
            last = row[sealed.key]
        if len(rows) < _REWRAP_PAGE:
            return done


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
