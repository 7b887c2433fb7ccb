"""`carebus-scenario`: the 40-site network scenario, its oracle, and playing it.

    carebus-scenario describe [--sites N] [--appointments N] [--seed S]
    carebus-scenario write DIR [...]          # the inputs as files, and what they must become
    carebus-scenario play [--rate R] [...]    # into the running suite (`make run`), then check

`play` finds the suite like the `carebus` command does (NATS_URL / DATABASE_URL, else the
devstack recorded in CAREBUS_DATA_DIR, default ./.data) and the services' ports from their
settings (the CAREBUS_<SERVICE>_* environment). Exit status: 0 the ledger equals the oracle,
1 it differs, 2 the suite could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path

import msgspec

from carebus_scenario.config import ScenarioConfig
from carebus_scenario.demo import play_and_check
from carebus_scenario.endpoints import Endpoints
from carebus_scenario.generator import generate
from carebus_scenario.network import masterdata_imports
from carebus_scenario.oracle import expect
from carebus_scenario.summary import print_scenario
from carebus_shared.cli.devstack import read_endpoints
from carebus_shared.cli.services import discover

_SUFFIX = {"siu": "hl7", "dft": "hl7", "fhir": "json", "csv": "csv"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carebus-scenario", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("describe", "print the scenario and what the oracle expects"),
        ("write", "write the inputs and the expectation to a folder"),
        ("play", "play it into the running suite and compare the ledger with the oracle"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--sites", type=int, default=40)
        command.add_argument("--appointments", type=int, default=60, help="visits per site")
        command.add_argument("--seed", type=int, default=ScenarioConfig.seed)
        command.add_argument("--day", type=dt.date.fromisoformat, default=ScenarioConfig.day)
        if name == "write":
            command.add_argument("folder", type=Path)
        if name == "play":
            command.add_argument("--rate", type=float, default=None, help="events/s (default: max)")
    return parser


def _config(args: argparse.Namespace, remittance_site: str = "CBO") -> ScenarioConfig:
    return ScenarioConfig(
        seed=args.seed, sites=args.sites, appointments_per_site=args.appointments,
        day=args.day, remittance_site=remittance_site,
    )  # fmt: skip


def _write(args: argparse.Namespace) -> int:
    scenario = generate(_config(args))
    expected = expect(scenario)
    folder: Path = args.folder
    (folder / "inputs").mkdir(parents=True, exist_ok=True)
    for d in scenario.deliveries:
        suffix = _SUFFIX.get(d.channel, "835")
        (folder / "inputs" / f"{d.seq:06d}-{d.channel}.{suffix}").write_bytes(d.payload)
    master = {collection: records for collection, records in masterdata_imports(scenario.network)}
    (folder / "masterdata.json").write_text(json.dumps(master, indent=1))
    expectation = {
        "ledger": [
            {"site": s, "account": a, "currency": c, "debit_minor": b.debit_minor,
             "credit_minor": b.credit_minor}
            for (s, a, c), b in sorted(expected.ledger.items())
        ],
        "journals_per_site": dict(expected.journals),
        "exceptions": [
            {"stage": st, "category": cat, "reason": r, "count": n}
            for (st, cat, r), n in sorted(expected.exceptions.items())
        ],
        "quarantine": dict(expected.quarantine),
    }  # fmt: skip
    (folder / "expected.json").write_text(json.dumps(expectation, indent=1))
    deliveries = [
        {"seq": d.seq, "at": d.at.isoformat(), "channel": d.channel, "lane": d.lane,
         "label": d.label, "expected_answer": d.expected_answer,
         "refusal": msgspec.to_builtins(d.refusal) if d.refusal else None}
        for d in scenario.deliveries
    ]  # fmt: skip
    (folder / "deliveries.json").write_text(json.dumps(deliveries, indent=1))
    print_scenario(scenario, expected, print)
    print(f"written to {folder}")
    return 0


def _play(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("CAREBUS_DATA_DIR", ".data")).resolve()
    recorded = read_endpoints(data_dir)
    nats_url = os.environ.get("NATS_URL") or (recorded.nats_url if recorded else None)
    database_url = os.environ.get("DATABASE_URL") or (recorded.database_url if recorded else None)
    if not nats_url or not database_url:
        print("no running suite found: start it with `make run` (or set NATS_URL/DATABASE_URL)")
        return 2
    endpoints = Endpoints.from_services(discover(), nats_url, database_url)
    config = _config(args, endpoints.remittance_site)
    try:
        problems = asyncio.run(
            play_and_check(endpoints, config, data_dir / "scenario", rate=args.rate)
        )
    except OSError as exc:
        print(f"the suite could not be reached: {exc}")
        return 2
    return 0 if problems == [] else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "write":
        return _write(args)
    if args.command == "play":
        return _play(args)
    scenario = generate(_config(args))
    print_scenario(scenario, expect(scenario), print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
