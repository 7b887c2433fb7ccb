"""Check Helm values against the keys the NATS chart takes, recorded in ``chart-keys.txt``.

    python deploy/nats/chart_keys.py check values.yaml [values-dev.yaml ...]  # exit 1 on unknown
    python deploy/nats/chart_keys.py write CHART_VALUES_YAML                # re-record the keys

The chart (nats-io/k8s, helm/charts/nats) has no ``values.schema.json``, and Helm ignores a
misspelt key without a word, so a typo in our values file would silently leave the chart's
default in place. ``chart-keys.txt`` lists every key path of the chart's own ``values.yaml``
with the kind of its default: ``map`` (keys listed below it), ``open`` (an empty map the chart
passes on as it is: ``merge``, ``env``, ``resources``...), ``list`` or ``scalar``. Our values
may set any listed path, and anything below an ``open`` one. Re-record the list when the chart
version in ``values.yaml`` changes: ``helm show values nats/nats --version V > /tmp/v.yaml``,
then ``write /tmp/v.yaml`` and update the version in the file's header. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KEYS = HERE / "chart-keys.txt"
HEADER = """\
# Every key path of the NATS Helm chart's values.yaml and the kind of its default (map,
# open, list, scalar), for deploy/nats/chart_keys.py. Key names only, recorded from the
# chart's values.yaml (nats-io/k8s, helm/charts/nats); the chart and its values.yaml are
# Apache-2.0 (https://github.com/nats-io/k8s/blob/main/LICENSE).
# Chart version: {version}
"""


def kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "map" if value else "open"
    if isinstance(value, list):
        return "list"
    return "scalar"


def key_paths(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"config.cluster.enabled": "scalar", ...} for every key of a chart's values."""
    found: dict[str, str] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        found[path] = kind_of(value)
        if isinstance(value, dict):
            found.update(key_paths(value, f"{path}."))
    return found


def read_keys(path: Path = KEYS) -> dict[str, str]:
    keys = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, kind = line.split("\t")
            keys[key] = kind
    return keys


def unknown_keys(values: dict[str, Any], chart: dict[str, str], prefix: str = "") -> list[str]:
    """The key paths of ``values`` that the chart does not take."""
    unknown = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        kind = chart.get(path)
        if kind is None:
            unknown.append(path)
        elif kind == "map" and isinstance(value, dict):
            unknown += unknown_keys(value, chart, f"{path}.")
    return unknown


def load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path}: not a map of values")
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="exit 1 naming every key the chart does not take")
    check.add_argument("values", type=Path, nargs="+")
    write = sub.add_parser("write", help="record the keys of a chart's values.yaml")
    write.add_argument("chart_values", type=Path)
    write.add_argument("--version", required=True, help="the chart version, for the header")
    args = parser.parse_args(argv)
    if args.command == "write":
        keys = key_paths(load(args.chart_values))
        lines = [f"{key}\t{kind}" for key, kind in sorted(keys.items())]
        KEYS.write_text(HEADER.format(version=args.version) + "\n".join(lines) + "\n")
        print(f"{KEYS.name}: {len(lines)} keys")
        return 0
    chart = read_keys()
    status = 0
    for path in args.values:
        for key in unknown_keys(load(path), chart):
            print(f"{path}: {key} is not a key of the chart", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
