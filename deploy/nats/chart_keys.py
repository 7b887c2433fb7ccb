"""Check Helm values against the keys the NATS chart takes, before installing it.

    helm show values nats/nats --version V > /tmp/chart-values.yaml
    python deploy/nats/chart_keys.py /tmp/chart-values.yaml values.yaml [values-dev.yaml ...]

The chart (nats-io/k8s, helm/charts/nats) has no ``values.schema.json``, and Helm ignores a
misspelt key without a word, so a typo in our values file would silently leave the chart's
default in place. Every key path of the chart's own values has a kind: ``map`` (keys below
it), ``open`` (an empty map the chart passes on as it is: ``merge``, ``env``,
``resources``...), ``list`` or ``scalar``. Our values may set any of the chart's paths, and
anything below an ``open`` one; exit 1 names every other key. Needs PyYAML. The chart's values
are not kept in this repository: read them from the chart you install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


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
    parser.add_argument("chart_values", type=Path, help="`helm show values` of the chart")
    parser.add_argument("values", type=Path, nargs="+", help="our values files")
    args = parser.parse_args(argv)
    chart = key_paths(load(args.chart_values))
    status = 0
    for path in args.values:
        for key in unknown_keys(load(path), chart):
            print(f"{path}: {key} is not a key of the chart", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
