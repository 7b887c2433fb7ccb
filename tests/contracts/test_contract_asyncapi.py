"""The AsyncAPI document: complete for the registry, and accepted by the official parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from carebus_contracts import REGISTRY
from carebus_contracts.asyncapi import build_document

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "contracts" / "asyncapi.json"
NODE_PREFIX = REPO / ".data" / "node"
PARSER_VERSION = "3.6.0"
SCRIPT = Path(__file__).with_name("asyncapi_parse.cjs")


def test_document_covers_every_contract_and_service() -> None:
    doc = build_document(REGISTRY)
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {info.address for info in REGISTRY.contracts()}
    assert "exceptions.{stage}.{reason}.v1.{site}.{partition}" in addresses
    ops = doc["operations"].values()
    pairs = {
        (op["tags"][0]["name"], op["action"], op["channel"]["$ref"].split("/")[-1]) for op in ops
    }
    assert ("mapper", "receive", "validated_charge_posted_v1") in pairs
    assert ("mapper", "send", "erp_journal_requested_v1") in pairs
    assert ("erp-poster", "send", "erp_journal_rejected_v1") in pairs
    assert ("masterdata-validator", "receive", "billing_claim_adjudicated_v1") in pairs
    # Producers send only the current major; consumers still receive the old one.
    assert ("billing-adapter", "send", "billing_claim_adjudicated_v1") not in pairs
    assert ("billing-adapter", "send", "billing_claim_adjudicated_v2") in pairs
    services = {
        "scheduling-adapter",
        "billing-adapter",
        "masterdata-validator",
        "mapper",
        "erp-poster",
    }
    for service in services:
        assert (service, "send", "exceptions_exception_raised_v1") in pairs
    assert not any(s == "scheduling-adapter" and a == "receive" for s, a, _ in pairs)


def _parser_installed() -> bool:
    return (NODE_PREFIX / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file()


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js/npm not installed: the official AsyncAPI parser check needs them")
    if not _parser_installed():
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NODE_PREFIX),
                "--no-audit",
                "--no-fund",
                f"@asyncapi/parser@{PARSER_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    assert _parser_installed()
    return NODE_PREFIX


def _parse(prefix: Path, document: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None
    return subprocess.run(
        [node, str(SCRIPT), str(prefix), str(document)], capture_output=True, text=True, timeout=120
    )


def test_official_parser_accepts_the_document(asyncapi_parser: Path) -> None:
    result = _parse(asyncapi_parser, DOCUMENT)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["parsed"] is True
    assert summary["channels"] == len(REGISTRY.contracts())
    assert summary["messages"] == len(REGISTRY.contracts())


def test_official_parser_rejects_a_broken_document(asyncapi_parser: Path, tmp_path: Path) -> None:
    """The check can fail: a dangling channel reference is an error."""
    doc = json.loads(DOCUMENT.read_text())
    first = next(iter(doc["operations"].values()))
    first["channel"] = {"$ref": "#/channels/no_such_channel"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(doc))
    result = _parse(asyncapi_parser, broken)
    assert result.returncode != 0
    assert '"severity":0' in result.stdout
