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

# A metric name as a module of prometheus-client's users spells it: a quoted literal (names are
# never assembled, so that a search for one finds where it is declared).
_DECLARED = re.compile(r'"(carebus_[a-z0-9_]+)"')
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
    texts = (path.read_text() for path in sources)
    return {
        name for text in texts if "prometheus_client" in text for name in _DECLARED.findall(text)
    }


def known_metrics() -> set[str]:
    return declared_metrics()


def unknown_metrics(names: set[str], known: set[str]) -> set[str]:
    def is_known(name: str) -> bool:
        return name in known or any(
            name.endswith(suffix) and name.removesuffix(suffix) in known
            for suffix in _SERIES_SUFFIXES
        )

    return {name for name in names if not is_known(name)}
