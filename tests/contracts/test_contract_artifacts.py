"""Committed artifacts: fresh generation changes nothing, golden examples replay, and the
JSON Schemas accept what they should (today's examples under the previous minor too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from carebus_contracts import REGISTRY, decode, encode
from carebus_contracts.artifacts import Layout, new_examples, regenerable, stale
from carebus_contracts.cli import current_snapshots
from carebus_contracts.registry import parse_version
from carebus_contracts.schema_gate import load_snapshots

LAYOUT = Layout(Path(__file__).resolve().parents[2] / "contracts")
EXAMPLE_FILES = sorted(LAYOUT.examples.glob("*/v*/*.json"))
SCHEMA_FILES = sorted(LAYOUT.schemas.glob("*/v*.schema.json"))


def _example_version(path: Path) -> tuple[str, str]:
    return path.parent.parent.name, path.parent.name.removeprefix("v")


def _keeps(new: Any, old: Any) -> bool:
    """True when ``new`` holds every value of ``old`` (new optional fields may be added)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _keeps(new[k], v) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(new) == len(old) and all(map(_keeps, new, old))
    return bool(new == old)


def _validator(event_type: str, version: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(LAYOUT.schema_file(event_type, version).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_generated_files_are_committed_and_current() -> None:
    assert stale(LAYOUT, REGISTRY) == [], "run `carebus-contracts generate` and commit"
    for path, text in regenerable(LAYOUT, REGISTRY).items():
        assert path.read_text() == text, path
    assert new_examples(LAYOUT, REGISTRY) == {}


def test_snapshot_matches_the_contracts() -> None:
    assert load_snapshots(LAYOUT.snapshot) == current_snapshots(REGISTRY)


def test_every_contract_version_has_a_schema_and_an_example() -> None:
    for info in REGISTRY.contracts():
        assert LAYOUT.schema_file(info.event_type, info.version).is_file(), info.key
        assert list(LAYOUT.example_dir(info.event_type, info.version).glob("*.json")), info.key


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schemas_are_valid_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: "/".join(p.parts[-3:]))
def test_historical_examples_decode_with_todays_types(path: Path) -> None:
    event_type, version = _example_version(path)
    raw = path.read_bytes()
    event = decode(raw, event_type, version)
    current = REGISTRY.current(event_type)
    assert isinstance(event, current.type)
    assert event.event_type == event_type
    if parse_version(version)[0] == current.major:
        # Same major: nothing is lost, today's type re-encodes every field it was given.
        assert _keeps(json.loads(encode(event)), json.loads(raw))
    # Every example is valid under the schema it was written with.
    _validator(event_type, version).validate(json.loads(raw))


@pytest.mark.parametrize("info", REGISTRY.contracts(), ids=lambda c: c.key)
def test_todays_examples_pass_every_earlier_minor_schema(info: Any) -> None:
    """Readers still on an older minor of the same major accept today's messages."""
    earlier = [f"{info.major}.{minor}" for minor in range(info.minor)]
    examples = sorted(LAYOUT.example_dir(info.event_type, info.version).glob("*.json"))
    assert examples
    for version in earlier:
        validator = _validator(info.event_type, version)
        for path in examples:
            validator.validate(json.loads(path.read_text()))


def test_some_contract_has_history_to_check() -> None:
    """Keeps the previous-minor check honest: at least one contract has a minor > 0."""
    assert any(info.minor > 0 for info in REGISTRY.contracts())
    assert LAYOUT.schema_file("billing.payment.posted", "1.0").is_file()


def test_previous_minor_schema_rejects_a_breaking_payload() -> None:
    """The cross-minor check can fail: a message missing a required field is rejected."""
    path = LAYOUT.example_dir("billing.payment.posted", "1.1") / "basic.json"
    doc = json.loads(path.read_text())
    del doc["amount"]
    with pytest.raises(jsonschema.ValidationError, match="'amount' is a required property"):
        _validator("billing.payment.posted", "1.0").validate(doc)
