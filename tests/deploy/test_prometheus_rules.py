"""deploy/prometheus: the alert rules pass promtool's check and their unit tests, every alert
has a unit test that fires and one that stays silent, and rules name only metrics the suite
declares and labels that carry no identifier."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.deploy.observability import (
    PROMETHEUS,
    RULE_TESTS,
    RULES,
    alerts,
    known_metrics,
    load_yaml,
    metric_names,
    run_promtool,
    unknown_metrics,
)

SEVERITIES = {"critical", "warning"}
# Bounded labels an annotation may print; anything else could be an identifier.
PRINTABLE_LABELS = {"site", "stage", "reason", "stream", "consumer", "kind", "job", "instance"}
_LABEL_REFERENCE = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


def test_promtool_checks_the_rules() -> None:
    result = run_promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    """A circuit alert that also fired half-open must fail them (they can fail at all)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    changed = RULES.read_text().replace(
        "carebus_erp_poster_circuit_state == 2", "carebus_erp_poster_circuit_state >= 1"
    )
    assert changed != RULES.read_text()
    (tmp_path / RULES.name).write_text(changed)
    result = run_promtool("test", "rules", tmp_path / "tests" / RULE_TESTS.name)
    assert result.returncode != 0
    assert "CarebusErpCircuitOpen" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_and_one_that_stays_silent() -> None:
    cases = [
        case for test in load_yaml(RULE_TESTS)["tests"] for case in test.get("alert_rule_test", [])
    ]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts with no unit test that fires"
    assert names - silent == set(), "alerts with no unit test that stays silent"
    assert (fires | silent) - names == set(), "unit tests of alerts that do not exist"


def test_every_alert_waits_has_a_severity_and_says_what_to_do() -> None:
    runbook = (PROMETHEUS / "README.md").read_text()
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no for:"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), name
        assert annotations["runbook"].startswith(f"deploy/prometheus/README.md#{name.lower()}:")
        assert f"\n### {name}\n" in runbook, f"{name}: no runbook section in README.md"


def test_annotations_print_only_bounded_labels() -> None:
    for rule in alerts():
        printed = set(_LABEL_REFERENCE.findall(yaml.safe_dump(rule["annotations"])))
        assert printed <= PRINTABLE_LABELS, f"{rule['alert']}: {printed - PRINTABLE_LABELS}"


def test_rules_name_only_metrics_the_suite_declares() -> None:
    known = known_metrics()
    for rule in alerts():
        names = metric_names(rule["expr"])
        # Only the service-down alert reads Prometheus's own series (up) and no carebus one.
        assert names or rule["alert"] == "CarebusServiceDown", rule["alert"]
        assert unknown_metrics(names, known) == set(), rule["alert"]


def test_the_metric_name_check_knows_the_declared_names_and_refuses_others() -> None:
    known = known_metrics()
    assert {"carebus_stage_batch_seconds", "carebus_reconcile_differences"} <= known
    assert unknown_metrics({"carebus_stage_batch_seconds_bucket"}, known) == set()
    assert unknown_metrics({"carebus_stage_batch_secs"}, known) == {"carebus_stage_batch_secs"}
    assert metric_names('up{job="carebus_mapper"} + carebus_mapper_events_total') == {
        "carebus_mapper_events_total"
    }


def test_the_sample_config_is_valid_and_scrapes_each_service_on_its_default_port(
    tmp_path: Path,
) -> None:
    # promtool checks the scrape key file exists: a copy beside a key file where `make run`
    # writes it (.data/keys, relative to the repository root).
    copy = tmp_path / "deploy" / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    (tmp_path / ".data" / "keys").mkdir(parents=True)
    (tmp_path / ".data" / "keys" / "prometheus.key").write_text("cbk_example\n")
    result = run_promtool("check", "config", copy / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    for job in config["scrape_configs"]:
        if job["job_name"] != "carebus_reconcile":  # a plain exporter, no HTTP app
            assert job["authorization"]["credentials_file"].endswith("prometheus.key"), job
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    defaults = {
        f"carebus_{path.parents[2].name}": int(match.group(1))
        for path in (PROMETHEUS.parents[1] / "services").glob("*/src/*/config.py")
        if (match := re.search(r"^\s+http_port: Port = (\d+)$", path.read_text(), re.M))
    }
    assert len(defaults) >= 5
    reconcile_cli = PROMETHEUS.parents[1] / "shared/src/carebus_shared/cli/reconcile.py"
    port = re.search(r'"CAREBUS_RECONCILE_HTTP_PORT", "(\d+)"', reconcile_cli.read_text())
    assert port is not None
    defaults["carebus_reconcile"] = int(port.group(1))
    for job, default in defaults.items():
        assert targets.get(job) == [f"127.0.0.1:{default}"], job
