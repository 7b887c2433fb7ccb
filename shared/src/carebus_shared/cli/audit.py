"""`carebus audit`: check the audit log's chain, list its entries.

carebus audit verify                     exit 0 when the chain holds, 1 naming the first
                                         entry that does not
carebus audit list [--since T] [--until T] [--actor A] [--action X] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

import asyncpg

from carebus_shared import audit


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.astimezone()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="the audit log: verify its chain, list entries")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="recompute the hash chain; name the first broken entry")
    ls = actions.add_parser("list", help="entries, newest first")
    ls.add_argument("--since", type=_moment, help="ISO 8601; local time unless a zone is given")
    ls.add_argument("--until", type=_moment, help="ISO 8601; local time unless a zone is given")
    ls.add_argument("--actor")
    ls.add_argument("--action", dest="kind", choices=audit.ACTIONS)
    ls.add_argument("--limit", type=int, default=100)


def run(args: argparse.Namespace, database_url: str) -> int:
    if args.action == "verify":
        broken, count = asyncio.run(_verify(database_url))
        if broken is None:
            print(f"audit log intact: {count} entries, chain verified")
            return 0
        print(f"audit log BROKEN at entry {broken.seq}: {broken.problem}")
        return 1
    found = asyncio.run(_list(database_url, args))
    print("\n".join(audit.lines(found)) if found else "no matching audit entries")
    return 0


async def _verify(database_url: str) -> tuple[audit.Broken | None, int]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        broken = await audit.verify(conn)
        count = int(await conn.fetchval("SELECT count(*) FROM carebus_audit.entry"))
    finally:
        await conn.close()
    return broken, count


async def _list(database_url: str, args: argparse.Namespace) -> list[audit.Entry]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await audit.entries(
            conn, since=args.since, until=args.until, actor=args.actor, action=args.kind,
            limit=args.limit,
        )  # fmt: skip
    finally:
        await conn.close()
