"""`carebus reconcile`: scheduling, billing and the ledger side by side, per site and day.

    carebus reconcile --date 2025-03-10 [--days N] [--site S] [--format table|json|csv]
    carebus reconcile --every 1h [--days 3] [--metrics-port 9464]

Once: prints the report and exits 0 when nothing is unexplained, 1 when something is, 2 when
it could not run (bad arguments, NATS or PostgreSQL unreachable, streams not provisioned).
With ``--every``: reconciles the last N days at once and then every interval, keeps each
run's results and serves their metrics on ``/metrics`` until SIGTERM/SIGINT (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import sys
from typing import Final

import nats.errors
import nats.js.errors

from carebus_shared.reconcile.batch import Job, last_days, run_every, run_once, summary
from carebus_shared.reconcile.report import RENDERERS

_DURATION: Final = re.compile(r"^(\d+)([smhd])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> dt.timedelta:
    """``90s``, ``15m``, ``1h``, ``2d`` or ``0``."""
    if text == "0":
        return dt.timedelta(0)
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 15m, 1h or 2d")
    return dt.timedelta(**{_UNITS[match[2]]: int(match[1])})


def day(text: str) -> dt.date:
    today = dt.datetime.now(dt.UTC).date()
    named = {"today": today, "yesterday": today - dt.timedelta(days=1)}
    if text in named:
        return named[text]
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reconcile",
        help="scheduling, billing and the ledger side by side, per site and day",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--date", type=day, help="YYYY-MM-DD, today or yesterday (default: today)")
    p.add_argument("--days", type=_positive, default=1, help="the N days ending on --date")
    p.add_argument("--site", help="one site (default: every site)")
    p.add_argument("--format", choices=sorted(RENDERERS), default="table")
    p.add_argument(
        "--settle", type=duration, default=dt.timedelta(minutes=15),
        help="younger than this, an event not yet posted or confirmed is in flight (15m)",
    )  # fmt: skip
    p.add_argument(
        "--charge-lag", type=duration, default=dt.timedelta(days=1),
        help="younger than this, a completed visit without a charge is in flight (1d)",
    )  # fmt: skip
    p.add_argument(
        "--lookback", type=duration, default=dt.timedelta(days=1),
        help="read the streams from this long before the first day (1d)",
    )  # fmt: skip
    p.add_argument("--no-keep", action="store_true", help="do not store the results")
    p.add_argument("--every", type=duration, help="keep running: reconcile every interval")
    p.add_argument(
        "--metrics-host", default=os.environ.get("CAREBUS_RECONCILE_HTTP_HOST", "127.0.0.1")
    )
    p.add_argument(
        "--metrics-port", type=int,
        default=int(os.environ.get("CAREBUS_RECONCILE_HTTP_PORT", "9464")),
        help="with --every: where /metrics is served (9464; 0 picks a free port)",
    )  # fmt: skip
    p.add_argument("--max-runs", type=_positive, help="with --every: stop after N runs")


def _job(args: argparse.Namespace, last: dt.date) -> Job:
    return Job(
        days=last_days(last, args.days),
        site=args.site,
        settle=args.settle,
        charge_lag=args.charge_lag,
        lookback=args.lookback,
        keep=not args.no_keep,
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, nats.js.errors.NotFoundError):
        return "a stream is missing (run `carebus provision`)"
    if isinstance(exc, OSError | nats.errors.NoServersError):
        return f"{type(exc).__name__}: {exc}"  # where it could not connect
    return type(exc).__name__


def run(args: argparse.Namespace, nats_url: str, database_url: str) -> int:
    if args.every is not None:
        if args.date is not None:
            print("reconcile: --every reconciles the days ending today; drop --date")
            return 2
        if args.every <= dt.timedelta(0):
            print("reconcile: --every needs an interval above 0")
            return 2
        from carebus_shared.logs import configure_logging

        configure_logging("carebus-reconcile", os.environ.get("CAREBUS_LOG_LEVEL", "INFO"))
        return asyncio.run(
            run_every(
                nats_url,
                database_url,
                lambda today: _job(args, today),
                args.every,
                metrics_host=args.metrics_host,
                metrics_port=args.metrics_port,
                max_runs=args.max_runs,
            )
        )
    job = _job(args, args.date or dt.datetime.now(dt.UTC).date())
    try:
        outcome = asyncio.run(run_once(nats_url, database_url, job))
    except Exception as exc:  # exit 2, named by type: its text may quote what was read
        print(f"reconcile: could not run: {_why(exc)}", file=sys.stderr)
        return 2
    print(RENDERERS[args.format](outcome.results))
    print(summary(outcome, job.days), file=sys.stderr)
    return 1 if outcome.unexplained else 0
