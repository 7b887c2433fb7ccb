"""What the alert rules and dashboard tests share: promtool, the rules, and the metric names
the suite declares."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
RULES = PROMETHEUS / "carebus.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "carebus.test.yml"

# The ops console's metrics as agreed in /work/notes/ops-metrics.md (issue #15), copied here
# because the console is built on another branch. TODO once services/ops_console lands: delete
# this list; known_metrics() then finds them in its source like every other metric (it ignores
# the list as soon as any source declares a carebus_ops_ metric).
OPS_CONSOLE_METRICS = frozenset(
    {
        "carebus_ops_completed_without_charge",
        "carebus_ops_completed_without_charge_oldest_age_seconds",
        "carebus_ops_charges_unposted",
        "carebus_ops_charges_unposted_oldest_age_seconds",
        "carebus_ops_journals_unconfirmed",
        "carebus_ops_journals_unconfirmed_oldest_age_seconds",
        "carebus_ops_quarantined",
        "carebus_ops_exceptions_open",
        "carebus_ops_exceptions_open_oldest_age_seconds",
        "carebus_ops_exceptions_raised_total",
        "carebus_ops_inputs_refused_total",
        "carebus_ops_tracker_lag_messages",
        "carebus_ops_tracker_events_total",
        "carebus_jetstream_consumer_pending_messages",
        "carebus_jetstream_consumer_ack_pending_messages",
        "carebus_jetstream_consumer_redelivered_messages",
        "carebus_jetstream_consumer_oldest_unacked_age_seconds",
        "carebus_jetstream_stream_messages",
        "carebus_jetstream_stream_bytes",
    }
)

# A prometheus-client metric declared in Python: Counter("carebus_...", ...) and the like,
# GaugeMetricFamily(...) of a custom collector too.
_DECLARED = re.compile(
    r"\b(?:Counter|Gauge|Histogram|Summary|Info|Enum)(?:MetricFamily)?\(\s*\"(carebus_[a-z0-9_]+)\"",
    re.S,
)
_NAME = re.compile(r"\bcarebus_[a-z0-9_:]+")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
# The series a histogram (or summary) exposes besides its own name.
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool() -> str:
    """promtool's path; skips, naming what to install, where it is missing (make install
    installs it as root with apt-get: tools/install_system_packages.sh)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus, as make install does as root) "
            "or a Prometheus release's promtool on the PATH"
        )
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def metric_names(promql: str) -> set[str]:
    """The carebus_ metric names a PromQL expression selects (quoted label values such as
    job="carebus_mapper" are not names)."""
    return set(_NAME.findall(_QUOTED.sub('""', promql)))


def declared_metrics() -> set[str]:
    """Every carebus_ metric a Python source under shared/ or services/ declares."""
    sources = [*(REPO / "shared" / "src").rglob("*.py"), *(REPO / "services").rglob("*.py")]
    return {name for path in sources for name in _DECLARED.findall(path.read_text())}


def known_metrics() -> set[str]:
    declared = declared_metrics()
    if not any(name.startswith("carebus_ops_") for name in declared):
        declared |= OPS_CONSOLE_METRICS
    return declared


def unknown_metrics(names: set[str], known: set[str]) -> set[str]:
    def is_known(name: str) -> bool:
        return name in known or any(
            name.endswith(suffix) and name.removesuffix(suffix) in known
            for suffix in _SERIES_SUFFIXES
        )

    return {name for name in names if not is_known(name)}
