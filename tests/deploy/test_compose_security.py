"""compose.yaml's security invariants (docs/decisions/024): secrets only from the uncommitted
env file, only the intake listeners and the console published (on loopback by default), the
ERP sandbox and its admin on the internal network only, each service its own NATS user."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from carebus_shared.cli.services import discover
from carebus_shared.db.roles import password_env as pg_password_env
from carebus_shared.jetstream.permissions import ADMIN_USER, SERVICES, all_permissions
from carebus_shared.jetstream.server_config import password_env, render_authorization
from tests.deploy.manifests import CONSOLE_DOWNSTREAM, REPO

COMPOSE = REPO / "compose.yaml"
# Intake: MLLP (2575, 2576) and HTTP (8081, 8082); the console (8087).
PUBLISHED = {
    "scheduling-adapter": {"8081", "2575"},
    "billing-adapter": {"8082", "2576"},
    "ops-console": {"8087"},
}
REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def test_only_the_intake_listeners_and_the_console_are_published_on_loopback() -> None:
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == set(PUBLISHED)
    for name, ports in published.items():
        targets = set()
        for port in ports:
            host, published_port, target = port.rsplit(":", 2)
            assert host in ("127.0.0.1", "${CAREBUS_BIND:-127.0.0.1}"), port
            assert published_port == target
            targets.add(target)
        assert targets == PUBLISHED[name]
    assert services["ops-console"]["ports"] == ["127.0.0.1:8087:8087"]


def test_the_erp_sandbox_is_on_the_internal_network_only() -> None:
    compose = _compose()
    sandbox = compose["services"]["erp-sandbox"]
    assert "ports" not in sandbox
    assert sandbox["networks"] == ["internal"]
    assert compose["networks"]["internal"]["internal"] is True
    for name in ("nats", "postgres", "masterdata-validator", "mapper"):
        assert compose["services"][name]["networks"] == ["internal"], name


def test_no_secret_is_written_in_the_file_only_required_variables() -> None:
    text = COMPOSE.read_text()
    for value in _strings(_compose()):
        # Credentials in a URL or a password field come from a variable of the env file.
        for secret in re.findall(r"//[^:/@]+:([^@]+)@", value):
            assert REQUIRED_VARIABLE.fullmatch(secret), value
    postgres = _compose()["services"]["postgres"]["environment"]
    assert REQUIRED_VARIABLE.fullmatch(postgres["POSTGRES_PASSWORD"])
    variables = set(REQUIRED_VARIABLE.findall(text))
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert variables <= set(example), variables - set(example)
    assert all(example[v] == "CHANGE-ME" for v in variables)


def test_the_env_file_is_never_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(REPO / ".env")], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, ".env must be in .gitignore"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, check=False, capture_output=True
    )
    assert tracked.returncode != 0


def test_each_service_connects_to_nats_as_its_own_generated_user() -> None:
    compose = _compose()
    users_conf = (REPO / "deploy" / "nats" / "carebus-users.conf").read_text()
    assert users_conf.endswith(render_authorization(all_permissions())), "carebus nats-config"
    nats_env = compose["services"]["nats"]["environment"]
    for user in [*SERVICES, ADMIN_USER]:
        assert nats_env[password_env(user)] == f"${{{password_env(user)}:?set in .env}}"
    for name, service in compose["services"].items():
        url = (service.get("environment") or {}).get("NATS_URL")
        if url is None:
            continue
        user = ADMIN_USER if name == "provision" else name
        assert url == f"nats://{user}:${{{password_env(user)}:?set in .env}}@nats:4222", name


def test_each_service_logs_in_to_postgres_as_its_own_role() -> None:
    """docs/decisions/026: provisioning sets every role's password; a service sees its own."""
    compose = _compose()
    provision_env = compose["services"]["provision"]["environment"]
    for service in discover():
        variable = pg_password_env(service.schema)
        assert provision_env[variable] == f"${{{variable}:?set in .env}}"
        url = compose["services"][service.name]["environment"]["DATABASE_URL"]
        assert url == (
            f"postgresql://{service.schema}:${{{variable}:?set in .env}}@postgres:5432/carebus"
        ), service.name


def test_the_console_reaches_the_adapters_and_the_validator_by_their_names() -> None:
    environment = _compose()["services"]["ops-console"]["environment"]
    assert {name: environment.get(name) for name in CONSOLE_DOWNSTREAM} == CONSOLE_DOWNSTREAM
