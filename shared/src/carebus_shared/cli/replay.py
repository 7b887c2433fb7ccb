"""`carebus replay`: re-drive a window of a stream through one stage, or list recent replays.

carebus replay --stream S (--since T [--until T] | --from-seq N [--to-seq M]) [--subject F]
               --into STAGE [--dry-run] [--actor NAME]
carebus replay --list [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carebus_shared.replay.records import Replay
    from carebus_shared.replay.republish import Survey
    from carebus_shared.replay.use_case import Plan, Request, Result


def moment(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a zone, e.g. 2025-03-10T00:00:00Z")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="re-drive a window of a stream through one stage")
    p.add_argument("--list", action="store_true", help="show recent replays")
    p.add_argument("--limit", type=int, default=20, help="with --list: how many")
    p.add_argument("--stream", help="SCHEDULING, BILLING, VALIDATED or ERP")
    p.add_argument("--since", type=moment, help="first message time (ISO 8601 with a zone)")
    p.add_argument("--until", type=moment, help="last message time (with --since)")
    p.add_argument("--from-seq", type=int, help="first stream sequence")
    p.add_argument("--to-seq", type=int, help="last stream sequence (with --from-seq)")
    p.add_argument("--subject", help="only these subjects (a NATS filter)")
    p.add_argument("--into", help="masterdata-validator (validator), mapper or erp-poster (poster)")
    p.add_argument("--dry-run", action="store_true", help="count by subject, republish nothing")
    p.add_argument("--actor", help="who replays (default: the OS user)")
    p.add_argument("--max-backlog", type=int, default=2_000, help="wait above this backlog")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments of a replay (not --list), or None."""
    if not args.stream or not args.into:
        return "--stream and --into are required (or --list)"
    if (args.since is None) == (args.from_seq is None):
        return "give the window's start: --since TIME or --from-seq N (one of them)"
    if args.until is not None and args.since is None:
        return "--until goes with --since"
    if args.to_seq is not None and args.from_seq is None:
        return "--to-seq goes with --from-seq"
    if args.max_backlog < 1:
        return "--max-backlog must be at least 1"
    return None


def actor_or_os_user(given: str | None = None) -> str:
    """Who acts from the command line: as given, else the OS user."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in this environment (a bare container)
        return f"uid {os.getuid()}"


def run(args: argparse.Namespace, nats_url: str, database_url: str) -> int:
    if args.list:
        print("\n".join(asyncio.run(_list(database_url, args.limit))))
        return 0
    from carebus_shared.jetstream.window import Window
    from carebus_shared.replay.use_case import Request

    problem = usage_problem(args)
    if problem is None:
        try:
            window = Window(args.from_seq, args.to_seq, args.since, args.until)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"carebus replay: {problem}", file=sys.stderr)
        return 2
    request = Request(args.stream, args.into, window, args.subject)
    try:
        return asyncio.run(_replay(args, request, nats_url, database_url))
    except KeyboardInterrupt:  # recorded as interrupted, with the last sequence done
        print("carebus replay: stopped; `carebus replay --list` says how far", file=sys.stderr)
        return 130


async def _replay(
    args: argparse.Namespace, request: Request, nats_url: str, database_url: str
) -> int:
    import asyncpg

    from carebus_shared.jetstream.connection import connect as connect_nats
    from carebus_shared.replay import use_case
    from carebus_shared.replay.progress import progress_on
    from carebus_shared.replay.targets import ReplayRefused

    nc = await connect_nats(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        try:
            planned = await use_case.plan(js, request)
        except ReplayRefused as exc:
            print(f"carebus replay: {exc}", file=sys.stderr)
            return 2
        if args.dry_run:
            found = await use_case.dry_run(js, planned, progress_on())
            print("\n".join(survey_lines(planned, found)))
            return 0
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            settings = use_case.Settings(max_backlog=args.max_backlog)
            actor = actor_or_os_user(args.actor)
            result = await use_case.replay(js, conn, planned, actor, progress_on(), settings)
        finally:
            await conn.close()
    finally:
        await nc.close()
    print(result_line(result))
    return 0 if result.outcome == "completed" else 1


def _window(plan: Plan) -> str:
    w, span = plan.span.window, plan.span
    if w.since is not None:
        until = f"{w.until:%Y-%m-%d %H:%M:%S%z}" if w.until else "now"
        return f"{w.since:%Y-%m-%d %H:%M:%S%z} .. {until} (up to seq {span.end_seq})"
    return f"seq {w.from_seq} .. {span.end_seq}"


def survey_lines(plan: Plan, found: Survey) -> list[str]:
    lines = [
        f"dry run: {plan.span.stream} {_window(plan)} on {plan.span.subject} "
        f"into {plan.target.consumer.durable}: {found.total} messages would be republished"
        + (f", {found.skipped} copies of earlier replays skipped" if found.skipped else "")
    ]
    if found.first and found.last:
        (first, since), (last, until) = found.first, found.last
        lines.append(
            f"from seq {first} ({since.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ}) "
            f"to seq {last} ({until.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ})"
        )
    lines += [f"{n:>8}  {subject}" for subject, n in sorted(found.by_subject.items())]
    return lines


def result_line(result: Result) -> str:
    t = result.tally
    where = f"{result.plan.span.stream} {_window(result.plan)}"
    line = (
        f"replay {result.replay_id} {result.outcome}: {t.republished} of {t.read} messages of "
        f"{where} republished into {result.plan.target.consumer.durable} in "
        f"{result.elapsed_s:.1f} s ({result.rate:,.0f}/s); {t.skipped} copies of earlier "
        f"replays skipped, {t.duplicates} dropped as duplicates"
    )
    if result.error:
        resume = f"; resume with --from-seq {t.last_seq + 1}" if t.last_seq else ""
        line += f"\n{result.error}{resume}"
    return line


async def _list(database_url: str, limit: int) -> list[str]:
    import asyncpg

    from carebus_shared.replay import records

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await records.recent(conn, limit)
    finally:
        await conn.close()
    return list_lines(rows)


def list_lines(rows: Sequence[Replay]) -> list[str]:
    if not rows:
        return ["no replays recorded"]
    lines = [
        f"{'ID':>5} {'STARTED (UTC)':19} {'ACTOR':12} {'STREAM':10} {'INTO':32} "
        f"{'WINDOW':24} {'READ':>7} {'REPUB':>7} {'SKIP':>6} {'TOOK':>7} OUTCOME"
    ]
    for r in rows:
        if r.from_seq is not None:
            window = f"seq {r.from_seq}..{r.to_seq or r.end_seq}"
        else:
            assert r.since is not None
            window = f"{r.since.astimezone(dt.UTC):%m-%d %H:%M:%S}..seq {r.end_seq}"
        took = f"{((r.finished_at or r.updated_at) - r.started_at).total_seconds():.1f}s"
        lines.append(
            f"{r.id:>5} {r.started_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} {r.actor[:12]:12} "
            f"{r.stream:10} {r.consumer:32} {window:24} {r.read:>7} {r.republished:>7} "
            f"{r.skipped:>6} {took:>7} {r.outcome}" + (f": {r.error}" if r.error else "")
        )
    return lines
