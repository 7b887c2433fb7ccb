"""The NATS Helm chart's values (deploy/nats): the key checker, and what carebus needs of the
servers (a three-server cluster, JetStream on file storage fsyncing every
write, the generated users, each password from the Secret the manifests name)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from carebus_shared.jetstream.permissions import ADMIN_USER, SERVICES, all_permissions
from carebus_shared.jetstream.server_config import render_helm_values, secret_name
from tests.deploy.manifests import REPO, load_script, named, of_kind, rendered

NATS = REPO / "deploy" / "nats"
chart_keys = load_script(NATS / "chart_keys.py")


def _values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((NATS / name).read_text())
    return loaded


# A made-up chart's values in the shape of the real one's (the chart's own values are not
# kept here: `chart_keys.py` reads them from `helm show values` before an install).
CHART = {
    "config": {
        "cluster": {"enabled": False, "replicas": 3},
        "jetstream": {"enabled": True, "fileStore": {"enabled": True}, "merge": {}},
        "merge": {},
    },
    "container": {"env": {}, "resources": {}},
    "podDisruptionBudget": {"enabled": True},
}


def test_a_misspelt_key_is_caught_and_open_maps_take_anything() -> None:
    chart = chart_keys.key_paths(CHART)
    assert chart["config.merge"] == "open"
    values = {
        "config": {
            "cluster": {"enabled": True},
            "jetstream": {"filestore": {"enabled": True}, "merge": {"sync_interval": "always"}},
            "merge": {"authorization": {"user": "carebus"}},
        },
        "podDisruptionBudgets": {"enabled": True},
    }
    assert chart_keys.unknown_keys(values, chart) == [
        "config.jetstream.filestore",
        "podDisruptionBudgets",
    ]


def test_the_check_script_exits_1_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart-values.yaml"
    chart.write_text(yaml.safe_dump(CHART))
    good = tmp_path / "good.yaml"
    good.write_text("config:\n  cluster:\n    enabled: true\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("config:\n  clustr:\n    enabled: true\n")
    assert chart_keys.main([str(chart), str(good)]) == 0
    assert chart_keys.main([str(chart), str(bad)]) == 1
    assert "config.clustr is not a key of the chart" in capsys.readouterr().err


def test_the_same_chart_version_everywhere() -> None:
    found = {
        name: set(re.findall(r"nats/nats --version (\d\S*)", text))
        for name, text in (
            ("values.yaml", (NATS / "values.yaml").read_text()),
            ("deploy/nats/README.md", (NATS / "README.md").read_text()),
            ("README.md", (REPO / "README.md").read_text()),
        )
    }
    versions = set().union(*found.values())
    assert len(versions) == 1, found
    assert all(found.values()), found
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions.pop())


def test_three_servers_with_jetstream_on_file_storage_fsyncing_every_write() -> None:
    config = _values("values.yaml")["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    jetstream = config["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True
    assert jetstream["memoryStore"]["enabled"] is False
    # The chart renders `merge` into the server's jetstream block (files/config/config.yaml).
    assert jetstream["merge"]["sync_interval"] == "always"


def test_streams_have_no_more_replicas_than_there_are_servers() -> None:
    servers = _values("values.yaml")["config"]["cluster"]["replicas"]
    for overlay, cluster in (("prod", True), ("dev", False)):
        config = next(
            c
            for c in of_kind(rendered(overlay), "ConfigMap")
            if c["metadata"]["name"].startswith("carebus-provision-")
        )
        replicas = int(config["data"]["replicas"])
        assert replicas == (servers if cluster else 1), overlay
    assert _values("values-dev.yaml")["config"]["cluster"]["enabled"] is False


def test_the_users_are_the_generated_ones_each_password_from_its_own_secret() -> None:
    users_file = (NATS / "values-users.yaml").read_text()
    assert users_file == render_helm_values(all_permissions()), "run carebus nats-config --helm"
    values = _values("values-users.yaml")
    example = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all((REPO / "deploy" / "k8s" / "secret.example.yaml").read_text())
    }
    for user in values["config"]["merge"]["authorization"]["users"]:
        variable = re.fullmatch(r"<< \$(\w+) >>", user["password"])
        assert variable, "a password must be an environment variable of the servers"
        ref = values["container"]["env"][variable[1]]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret_name(user["user"]), "key": "password"}
        secret = example[ref["name"]]
        assert secret["url"] == f"nats://{user['user']}:{secret['password']}@nats:4222"
    # Nothing is left of the one shared user.
    assert "authorization" not in _values("values.yaml")["config"]["merge"]


def test_each_workload_reads_the_nats_url_of_its_own_user() -> None:
    for overlay in ("prod", "dev"):
        for doc in rendered(overlay):
            if doc["kind"] not in ("Deployment", "Job", "CronJob"):
                continue
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            name = doc["metadata"]["labels"].get("app.kubernetes.io/name", doc["metadata"]["name"])
            for container in spec["template"]["spec"]["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                ref = env["NATS_URL"]["valueFrom"]["secretKeyRef"]
                wanted = secret_name(name if name in SERVICES else ADMIN_USER)
                assert ref == {"name": wanted, "key": "url"}, (overlay, doc["metadata"]["name"])


def test_resources_and_a_disruption_budget() -> None:
    values = _values("values.yaml")
    resources = values["container"]["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert values["podDisruptionBudget"]["enabled"] is True


def test_the_network_policies_select_the_charts_pods() -> None:
    """The release "nats" labels its server pods so (chart templates/_helpers.tpl)."""
    policy = named(rendered("prod"), "NetworkPolicy", "nats-servers")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "nats",
        "app.kubernetes.io/component": "nats",
    }
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {4222, 6222, 8222}
