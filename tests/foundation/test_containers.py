"""Container definitions, checked without a container engine."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(REPO.glob("services/*/Dockerfile"))
# Every image: the services', and the tools' (the ERP sandbox).
IMAGES = DOCKERFILES + sorted(REPO.glob("tools/*/Dockerfile"))
RENDER = REPO / "deploy" / "docker" / "render_dockerfiles.py"


def test_every_service_has_a_dockerfile() -> None:
    services = sorted(p.name for p in (REPO / "services").iterdir() if p.is_dir())
    assert [p.parent.name for p in DOCKERFILES] == services
    assert len(services) == 7


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RENDER), *args], capture_output=True, text=True)


def test_every_dockerfile_is_rendered_from_the_one_template() -> None:
    result = _render("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dockerfile_edited_by_hand_is_caught(tmp_path: Path) -> None:
    assert _render("--root", str(tmp_path)).returncode == 0
    edited = tmp_path / "services" / "mapper" / "Dockerfile"
    edited.write_text(edited.read_text().replace("USER 10001", "USER root"))
    result = _render("--root", str(tmp_path), "--check")
    assert result.returncode == 1
    assert "services/mapper/Dockerfile" in result.stderr
    assert "services/erp_poster/Dockerfile" not in result.stderr


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.parent.name)
def test_dockerfile_runs_as_non_root_with_a_healthcheck(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert text.count("FROM ") >= 2, "multi-stage"
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text
    assert "/health/live" in text


def _compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by the check-jsonschema package."""
    vendored = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    loaded: dict[str, Any] = json.loads(vendored.read_text())
    return loaded


def _validate(compose: object) -> None:
    schema = _compose_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(compose)


def test_compose_file_matches_the_compose_specification() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    _validate(compose)
    services = compose["services"]
    assert {
        "nats",
        "postgres",
        "provision",
        "scheduling-adapter",
        "billing-adapter",
        "masterdata-validator",
        "mapper",
        "erp-poster",
        "ops-console",
        "outbound",
    } <= set(services)
    assert "sync_interval: always" in compose["configs"]["nats-server.conf"]["content"]
    built = {name: s["build"]["dockerfile"] for name, s in services.items() if "build" in s}
    assert built["erp-sandbox"] == "tools/erp_sandbox/Dockerfile"
    assert all((REPO / dockerfile).is_file() for dockerfile in built.values()), built


def test_a_broken_compose_file_is_caught() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    compose["services"]["mapper"]["depends_on"] = 42
    with pytest.raises(jsonschema.ValidationError):
        _validate(compose)
