"""``carebus-contracts``: generate the contract artifacts and run the compatibility gate.

    carebus-contracts generate          write schemas/, asyncapi.json and new examples/
    carebus-contracts check             fail on breaking changes or stale artifacts
    carebus-contracts check --update    accept the current contracts as the new snapshot

``main(argv)`` returns the exit code so the suite CLI can mount it as ``carebus contracts``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carebus_contracts import artifacts, schema_gate
from carebus_contracts.registry import REGISTRY, Registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebus-contracts", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", type=Path, help="the contracts/ folder (default: this package's source tree)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("generate", help="write JSON Schemas, the AsyncAPI document, examples")
    check = commands.add_parser("check", help="compare contracts with the committed snapshot")
    check.add_argument("--update", action="store_true", help="rewrite the snapshot (and generate)")
    check.add_argument(
        "--allow-breaking",
        action="store_true",
        help="with --update: accept breaking changes (only before anything consumes them)",
    )
    return parser


def current_snapshots(registry: Registry) -> dict[str, schema_gate.Snapshot]:
    snapshots = (schema_gate.snapshot_of(info.type) for info in registry.contracts())
    return {s.key: s for s in snapshots}


def run_check(
    layout: artifacts.Layout, registry: Registry, *, update: bool, allow_breaking: bool
) -> int:
    old = schema_gate.load_snapshots(layout.snapshot)
    new = current_snapshots(registry)
    report = schema_gate.evaluate(old, new)
    if update:
        if report.has_breaking and not allow_breaking:
            print(report.render())
            print("Refusing to update the snapshot over breaking changes (--allow-breaking).")
            return 1
        try:
            written = artifacts.generate(layout, registry)
        except artifacts.PublishedSchemaChanged as exc:
            print(report.render())
            print(f"Not updated: {exc}")
            return 1
        schema_gate.write_snapshots(layout.snapshot, new)
        print(report.render() if old else "Snapshot created.")
        print(f"Snapshot updated ({len(new)} contracts); {len(written)} generated files written.")
        return 0
    print(report.render())
    stale = artifacts.stale(layout, registry)
    if stale:
        print("FAILED: generated files are stale (run `carebus-contracts generate`, commit):")
        print("\n".join(f"  {path.relative_to(layout.root)}" for path in stale))
    return 0 if report.ok and not stale else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = artifacts.Layout(args.root) if args.root else artifacts.default_layout()
    if args.command == "generate":
        try:
            written = artifacts.generate(layout, REGISTRY)
        except artifacts.PublishedSchemaChanged as exc:
            print(f"generate: {exc}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path.relative_to(layout.root)}")
        print(f"{len(written)} files written under {layout.root}")
        return 0
    return run_check(layout, REGISTRY, update=args.update, allow_breaking=args.allow_breaking)


if __name__ == "__main__":
    sys.exit(main())
