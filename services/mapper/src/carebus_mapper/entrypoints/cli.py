"""`carebus-mapper`: run the mapper, check a rule directory, or shadow-replay candidate rules.

carebus-mapper serve
carebus-mapper settings
carebus-mapper check-rules [DIR]
carebus-mapper shadow --rules DIR [--current DIR]
                      [--from-seq N] [--to-seq M] [--since TIME] [--until TIME]
                      [--examples 5] [--json] [--nats-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys

from carebus_mapper import app, config
from carebus_mapper.adapters.rule_files import default_rules_dir, load_rule_set
from carebus_mapper.adapters.stream_window import Window
from carebus_mapper.domain.rules import RuleSet, RuleSetError
from carebus_mapper.domain.shadow import ShadowReport, render, summary
from carebus_mapper.handlers.shadow import shadow_replay
from carebus_shared.jetstream.connection import connect as connect_nats
from carebus_shared.runtime.cli import Command, ServiceScript


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a zone, e.g. 2025-03-10T00:00:00Z")
    return moment


def _check_rules_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("directory", nargs="?", help="default: the shipped rule set")


def _shadow_arguments(shadow: argparse.ArgumentParser) -> None:
    shadow.add_argument("--rules", required=True, help="the candidate rule directory")
    shadow.add_argument("--current", help="the current rule directory (default: shipped)")
    shadow.add_argument("--from-seq", type=int, help="first stream sequence")
    shadow.add_argument("--to-seq", type=int, help="last stream sequence")
    shadow.add_argument("--since", type=_moment, help="first message time (ISO 8601 + zone)")
    shadow.add_argument("--until", type=_moment, help="last message time (ISO 8601 + zone)")
    shadow.add_argument("--limit", type=int, default=1_000_000, help="at most this many")
    shadow.add_argument("--examples", type=int, default=5, help="differing journals to show")
    shadow.add_argument("--json", action="store_true", help="print the summary as JSON")
    shadow.add_argument("--nats-url", help="default: NATS_URL")


def _check_rules(args: argparse.Namespace, _: object) -> int:
    directory: str | None = args.directory
    try:
        rules = load_rule_set(directory)
    except RuleSetError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"rule set {rules.version} ({directory or default_rules_dir()}): {len(rules.rules)} rules"
    )
    for rule in rules.rules:
        kind = "mirror " + rule.mirror if rule.mirror else ("postings" if rule.journal else "none")
        print(f"  {rule.priority:>4} {rule.id:<40} {','.join(sorted(rule.events)):<40} {kind}")
    return 0


async def _shadow(
    url: str, current: RuleSet, candidate: RuleSet, window: Window, examples: int
) -> ShadowReport:
    nc = await connect_nats(url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        return await shadow_replay(
            nc.jetstream(), current, candidate, window, max_examples=examples
        )
    finally:
        await nc.close()


def _run_shadow(args: argparse.Namespace, settings: config.Settings) -> int:
    try:
        current = load_rule_set(args.current)
        candidate = load_rule_set(args.rules)
        window = Window(args.from_seq, args.to_seq, args.since, args.until, args.limit)
    except (RuleSetError, ValueError) as exc:
        print(f"carebus-mapper shadow: {exc}", file=sys.stderr)
        return 2
    url = args.nats_url or settings.nats_url
    # The replay logs each stale or unmapped event; the report already counts them.
    logging.getLogger("carebus.mapper").setLevel(logging.ERROR)
    report = asyncio.run(_shadow(url, current, candidate, window, args.examples))
    print(json.dumps(summary(report), indent=2) if args.json else render(report))
    return 0


SCRIPT = ServiceScript(
    "carebus-mapper",
    __doc__,
    config,
    app.build,
    commands={
        "check-rules": Command(
            "validate a rule directory and list it",
            _check_rules,
            _check_rules_arguments,
            needs_settings=False,
        ),
        "shadow": Command(
            "compare candidate rules with the current ones over the recorded VALIDATED "
            "stream; publishes nothing",
            _run_shadow,
            _shadow_arguments,
        ),
    },
    # Invalid rules stop the service at start, with every problem named.
    start_errors=(RuleSetError,),
)
main = SCRIPT.main


if __name__ == "__main__":
    sys.exit(main())
