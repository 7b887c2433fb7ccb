"""The NATS Helm chart's values (deploy/nats): every key one the chart takes, and what carebus
needs of the servers (a three-server cluster, JetStream on file storage fsyncing every
write, the password from the Secret the manifests name)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import REPO, load_script, named, of_kind, rendered

NATS = REPO / "deploy" / "nats"
chart_keys = load_script(NATS / "chart_keys.py")


def _values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((NATS / name).read_text())
    return loaded


def _chart_version() -> str:
    header = (NATS / "chart-keys.txt").read_text()
    match = re.search(r"^# Chart version: (\S+)", header, re.MULTILINE)
    assert match, "chart-keys.txt names no chart version"
    return match[1]


def test_every_key_set_is_a_key_of_the_chart() -> None:
    keys = chart_keys.read_keys()
    assert len(keys) > 200
    for name in ("values.yaml", "values-dev.yaml"):
        assert chart_keys.unknown_keys(_values(name), keys) == [], name


def test_a_misspelt_key_is_caught() -> None:
    values = _values("values.yaml")
    values["config"]["jetstream"]["filestore"] = values["config"]["jetstream"].pop("fileStore")
    values["podDisruptionBudgets"] = {"enabled": True}
    assert chart_keys.unknown_keys(values, chart_keys.read_keys()) == [
        "config.jetstream.filestore",
        "podDisruptionBudgets",
    ]


def test_the_check_script_exits_1_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("config:\n  clustr:\n    enabled: true\n")
    assert chart_keys.main(["check", str(NATS / "values.yaml")]) == 0
    assert chart_keys.main(["check", str(bad)]) == 1


def test_the_recorded_keys_are_what_the_script_derives() -> None:
    """chart-keys.txt is the script's own output format: sorted, one known kind per key, and
    every map's children present."""
    keys = chart_keys.read_keys()
    assert list(keys) == sorted(keys)
    assert set(keys.values()) <= {"map", "open", "list", "scalar"}
    for key, kind in keys.items():
        parent = key.rpartition(".")[0]
        assert not parent or keys[parent] == "map", key
        if kind == "map":
            assert any(k.startswith(f"{key}.") for k in keys), key


def test_the_same_chart_version_everywhere() -> None:
    version = _chart_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for text in (
        (NATS / "values.yaml").read_text(),
        (NATS / "README.md").read_text(),
        (REPO / "README.md").read_text(),
    ):
        versions = set(re.findall(r"nats/nats --version (\d\S*)", text))
        assert versions == {version}


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


def test_the_password_comes_from_the_secret_the_manifests_read() -> None:
    values = _values("values.yaml")
    auth = values["config"]["merge"]["authorization"]
    variable = re.fullmatch(r"<< \$(\w+) >>", auth["password"])
    assert variable, "the password must be an environment variable of the server"
    ref = values["container"]["env"][variable[1]]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "carebus-nats", "key": "password"}
    example = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all((REPO / "deploy" / "k8s" / "secret.example.yaml").read_text())
    }
    assert "password" in example["carebus-nats"]
    assert example["carebus-nats"]["url"].startswith(f"nats://{auth['user']}:")
    assert example["carebus-nats"]["url"].endswith("@nats:4222")


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
