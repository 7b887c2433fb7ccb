"""`carebus`: the one command for running and operating the suite.

Endpoints come from NATS_URL / DATABASE_URL, else from the devstack's record in the data
folder (CAREBUS_DATA_DIR, default ./.data), else the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from carebus_shared import audit as audit_log
from carebus_shared.cli import audit, clients, keys, nats_config, ops, reconcile, replay
from carebus_shared.cli.devstack import devstack, read_endpoints


def _data_dir() -> Path:
    return Path(os.environ.get("CAREBUS_DATA_DIR", ".data")).resolve()


def _endpoints() -> tuple[str, str]:
    recorded = read_endpoints(_data_dir())
    nats_url = os.environ.get("NATS_URL") or (recorded.nats_url if recorded else None)
    database_url = os.environ.get("DATABASE_URL") or (recorded.database_url if recorded else None)
    return (
        nats_url or "nats://127.0.0.1:4222",
        database_url or "postgresql://postgres@127.0.0.1:5432/carebus",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="devstack + provision + every service (what `make run` does)")
    sub.add_parser("devstack", help="run NATS and PostgreSQL in the foreground")
    prov = sub.add_parser("provision", help="apply streams, consumers, buckets and migrations")
    prov.add_argument("--replicas", type=int, default=1, help="stream replicas (cluster size)")
    prov.add_argument(
        "--no-roles",
        dest="with_roles",
        action="store_false",
        help="migrations only, as the connected user: no owner or service roles (docs 026)",
    )
    sub.add_parser("status", help="streams, consumer backlogs and service health")
    exc = sub.add_parser("exceptions", help="the exception store")
    exc_sub = exc.add_subparsers(dest="action", required=True)
    ls = exc_sub.add_parser("list", help="records, newest first (open ones by default)")
    ls.add_argument("--site")
    ls.add_argument("--stage", help="a stage's name, or its contract stage (mapper, ...)")
    ls.add_argument("--reason", help="a category (masterdata, ...) or a reason code")
    ls.add_argument("--status", default="open", help="open, redriven, discarded, resolved or all")
    ls.add_argument("--since", type=_moment, help="ISO 8601; local time unless a zone is given")
    ls.add_argument("--until", type=_moment, help="ISO 8601; local time unless a zone is given")
    ls.add_argument("--limit", type=int, default=100)
    for action in ("show", "redrive", "discard"):
        one = exc_sub.add_parser(action)
        one.add_argument("id", type=int)
        if action == "discard":
            one.add_argument("--reason", "--note", dest="reason", required=True)
    clients.add_parser(sub)
    reconcile.add_parser(sub)
    replay.add_parser(sub)
    audit.add_parser(sub)
    ops.add_parsers(sub)
    nats_config.add_parser(sub)
    keys.add_parsers(sub)
    contracts = sub.add_parser("contracts", help="contract gate and generated documents")
    contracts.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    audit_log.set_origin("carebus-cli")
    audit_log.bind_client_address(audit_log.cli_address())
    if args.command == "run":
        from carebus_shared.cli.run import run_suite

        return run_suite(_data_dir())
    if args.command == "devstack":
        return _devstack()
    if args.command == "trace":
        return ops.run_trace(args)
    if args.command == "ops":
        return ops.run_ops(args)
    if args.command == "nats-config":
        return nats_config.run(args)
    if args.command == "keys":
        return keys.run_keys(args, os.environ.get("DATABASE_URL"))
    if args.command == "contracts":
        from carebus_contracts.cli import main as contracts_main

        return int(contracts_main(args.args))
    nats_url, database_url = _endpoints()
    if args.command == "provision":
        from carebus_shared.cli.provision import provision_all

        lines = asyncio.run(
            provision_all(nats_url, database_url, args.replicas, with_roles=args.with_roles)
        )
        print("\n".join(lines))
        return 0
    if args.command == "clients":
        return clients.run(args, database_url)
    if args.command == "reconcile":
        return reconcile.run(args, nats_url, database_url)
    if args.command == "status":
        from carebus_shared.cli.status import status_lines

        print("\n".join(asyncio.run(status_lines(nats_url))))
        return 0
    if args.command == "replay":
        return replay.run(args, nats_url, database_url)
    if args.command == "audit":
        return audit.run(args, database_url)
    if args.command == "purge":
        return keys.run_purge(args, database_url)
    return _exceptions(args, nats_url, database_url)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.astimezone()


def _exceptions(args: argparse.Namespace, nats_url: str, database_url: str) -> int:
    from carebus_shared.cli import exceptions as cmd
    from carebus_shared.exceptions.query import ExceptionFilter, InvalidQuery
    from carebus_shared.exceptions.redrive import RedriveOutcome

    if args.action == "list":
        status = None if args.status == "all" else args.status
        try:
            flt = ExceptionFilter(
                args.site, args.stage, args.reason, status, args.since, args.until
            )
            lines = asyncio.run(cmd.list_records(database_url, flt, args.limit))
        except InvalidQuery as exc:
            print(f"--{exc.field}: {exc.rule}", file=sys.stderr)
            return 2
        print("\n".join(lines) if lines else "no matching exceptions")
        return 0
    if args.action == "show":
        print(asyncio.run(cmd.show_record(database_url, args.id)))
        return 0
    if args.action == "discard":
        if not args.reason.strip():
            print("--reason: a discard needs a reason", file=sys.stderr)
            return 2
        result = asyncio.run(cmd.discard(database_url, args.id, args.reason))
        done = RedriveOutcome.DISCARDED
    else:
        result = asyncio.run(cmd.redrive(nats_url, database_url, args.id))
        done = RedriveOutcome.REDRIVEN
    print(f"record {result.record_id}: {result.outcome}: {result.message}")
    return 0 if result.outcome is done else 1


def _devstack() -> int:
    try:
        with devstack(_data_dir()) as endpoints:
            print(f"NATS_URL={endpoints.nats_url}\nDATABASE_URL={endpoints.database_url}")
            print("Ctrl-C stops both; data is kept.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
