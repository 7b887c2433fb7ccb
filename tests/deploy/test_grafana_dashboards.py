"""deploy/grafana: the dashboards parse, every panel query is valid PromQL naming only metrics
the suite declares, and the per-site dashboard filters its site panels by its site variable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.observability import (
    GRAFANA,
    known_metrics,
    metric_names,
    run_promtool,
    unknown_metrics,
)

DASHBOARDS = sorted(GRAFANA.glob("*.json"))
# What Grafana substitutes before a query reaches Prometheus, given a value promtool accepts.
_GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$site": ".*"}


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_there_are_the_pipeline_and_the_sites_dashboards() -> None:
    assert [p.name for p in DASHBOARDS] == ["carebus-pipeline.json", "carebus-sites.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_parses_with_unique_ids_and_a_query_in_every_panel(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["uid"] == path.stem
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            # The data source is the dashboard's variable: no uid of somebody's Grafana.
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_names_only_metrics_the_suite_declares(path: Path) -> None:
    known = known_metrics()
    for title, expr in _queries(_load(path)):
        names = metric_names(expr)
        assert names or expr.startswith("up{"), f"{title}: {expr}"
        assert unknown_metrics(names, known) == set(), f"{title}: {expr}"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool has no query check of its own: each query becomes a recording rule."""
    rules = []
    for path in DASHBOARDS:
        for n, (_, expr) in enumerate(_queries(_load(path))):
            for variable, value in _GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{n}", "expr": expr})
    file = tmp_path / "queries.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_promtool("check", "rules", file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promql_check_refuses_a_broken_query(tmp_path: Path) -> None:
    file = tmp_path / "broken.rules.yml"
    rule = {"record": "dashboard:broken", "expr": "sum by (site (carebus_ops_quarantined)"}
    file.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [rule]}]}))
    assert run_promtool("check", "rules", file).returncode != 0


def test_the_sites_dashboard_filters_every_site_panel_by_its_site_variable() -> None:
    dashboard = _load(GRAFANA / "carebus-sites.json")
    site = next(v for v in dashboard["templating"]["list"] if v["name"] == "site")
    assert site["multi"]
    assert site["includeAll"]
    assert "site)" in site["definition"]  # label_values(<metric>, site)
    business = [
        "carebus_ops_completed_without_charge",
        "carebus_ops_charges_unposted",
        "carebus_ops_journals_unconfirmed",
        "carebus_ops_quarantined",
        "carebus_ops_exceptions_open",
    ]
    queries = list(_queries(dashboard))
    for metric in business:
        assert any(metric in metric_names(expr) for _, expr in queries), metric
    for title, expr in queries:
        # Every selector of a metric with a site label carries site=~"$site".
        for selector in re.findall(r"(carebus_[a-z_]+)(\{[^}]*\})?", expr):
            name, labels = selector
            if name == "carebus_ops_exceptions_open_oldest_age_seconds":
                continue  # kept by stage only: no site label
            assert 'site=~"$site"' in labels, f"{title}: {expr}"


def test_the_pipeline_dashboard_shows_rates_backlog_unacked_latency_and_the_circuit() -> None:
    names = set().union(
        *(metric_names(e) for _, e in _queries(_load(GRAFANA / "carebus-pipeline.json")))
    )
    assert {
        "carebus_stage_messages_total",
        "carebus_jetstream_consumer_pending_messages",
        "carebus_jetstream_consumer_oldest_unacked_age_seconds",
        "carebus_stage_batch_seconds_bucket",
        "carebus_erp_poster_circuit_state",
    } <= names
