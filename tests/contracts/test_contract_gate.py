"""The compatibility gate catches each breaking kind and lets each safe kind through.

Each case builds a baseline struct and a variant of it (same event type and major), takes
both snapshots and runs the gate exactly as ``carebus-contracts check`` does.
"""

from __future__ import annotations

import enum
import shutil
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from carebus_contracts import cli
from carebus_contracts.envelope import Contract, Event, Money, SchemaVersion
from carebus_contracts.schema_gate import GateReport, evaluate, snapshot_of

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class ColourWithBlue(enum.StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class ColourNoGreen(enum.StrEnum):
    RED = "red"


class Line(Contract, frozen=True, kw_only=True):
    amount: Money
    note: str | None = None


class LineAmountAsInt(Contract, frozen=True, kw_only=True):
    amount: int
    note: str | None = None


class Base(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()


class Renamed(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    title: str  # was "name"
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()


class Removed(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    colour: Colour
    lines: tuple[Line, ...] = ()


class TypeChanged(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: str = "1"
    colour: Colour
    lines: tuple[Line, ...] = ()


class NestedTypeChanged(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[LineAmountAsInt, ...] = ()


class RequiredAdded(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()
    owner: str


class EnumValueRemoved(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 1
    colour: ColourNoGreen
    lines: tuple[Line, ...] = ()


class DefaultChanged(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 2
    colour: Colour
    lines: tuple[Line, ...] = ()


class MadeRequired(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int
    colour: Colour
    lines: tuple[Line, ...] = ()


class OptionalAdded(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()
    owner: str | None = None
    extra: Line | None = None  # a new optional struct may contain required fields


class OptionalAddedNoBump(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.0"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()
    owner: str | None = None


class EnumValueAdded(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    schema_version: SchemaVersion = "1.1"
    name: str
    count: int = 1
    colour: ColourWithBlue
    lines: tuple[Line, ...] = ()


class RenamedClassOnly(Event, tag="test.widget.happened", frozen=True, kw_only=True):
    """Docs and class names are not on the wire."""

    schema_version: SchemaVersion = "1.0"
    name: str
    count: int = 1
    colour: Colour
    lines: tuple[Line, ...] = ()


def _gate(variant: type[Event]) -> GateReport:
    old, new = snapshot_of(Base), snapshot_of(variant)
    assert old.key == new.key == "test.widget.happened.v1"
    return evaluate({old.key: old}, {new.key: new})


@pytest.mark.parametrize(
    ("variant", "kind", "path"),
    [
        (Renamed, "field removed or renamed", "$.name"),
        (Removed, "field removed or renamed", "$.count"),
        (TypeChanged, "type changed", "$.count"),
        (NestedTypeChanged, "type changed", "$.lines[].amount"),
        (RequiredAdded, "required field added", "$.owner"),
        (EnumValueRemoved, "enum value removed", "$.colour"),
        (DefaultChanged, "default changed", "$.count"),
        (MadeRequired, "field made required", "$.count"),
    ],
)
def test_breaking_changes_fail_with_a_readable_report(
    variant: type[Event], kind: str, path: str
) -> None:
    report = _gate(variant)
    assert not report.ok
    assert report.has_breaking
    breaking = [(c.kind, c.path) for r in report.results for c in r.breaking]
    assert (kind, path) in breaking
    text = report.render()
    assert text.startswith("FAILED")
    assert f"BREAKING {kind}" in " ".join(text.split())
    assert path in text
    assert "new major version" in text


def test_renamed_field_reports_removal_and_addition() -> None:
    report = _gate(Renamed)
    kinds = {(c.kind, c.path) for c in report.results[0].changes}
    assert ("required field added", "$.title") in kinds


def test_constraint_change_is_a_type_change() -> None:
    tight = msgspec.defstruct(
        "Tight",
        [
            ("schema_version", SchemaVersion, "1.1"),
            ("name", Annotated[str, msgspec.Meta(max_length=5)]),
            ("count", int, 1),
            ("colour", Colour),
            ("lines", tuple[Line, ...], ()),
        ],
        bases=(Event,),
        tag="test.widget.happened",
        frozen=True,
        kw_only=True,
    )
    report = _gate(tight)
    assert [(c.kind, c.path, c.detail) for c in report.results[0].breaking] == [
        ("type changed", "$.name", "string -> string[maxLength=5]")
    ]


@pytest.mark.parametrize("variant", [OptionalAdded, EnumValueAdded, RenamedClassOnly])
def test_safe_changes_pass(variant: type[Event]) -> None:
    report = _gate(variant)
    assert report.ok, report.render()
    assert report.render().startswith("OK")


def test_optional_field_added_is_reported_once_per_field() -> None:
    changes = _gate(OptionalAdded).results[0].changes
    assert [(c.kind, c.path, c.breaking) for c in changes] == [
        ("optional field added", "$.owner", False),
        ("optional field added", "$.extra", False),
    ]


def test_enum_value_added_passes_with_a_warning() -> None:
    report = _gate(EnumValueAdded)
    (change,) = report.results[0].changes
    assert (change.kind, change.breaking) == ("enum value added", False)
    assert "warning: readers on an older minor" in report.render()


def test_compatible_change_needs_a_minor_bump() -> None:
    report = _gate(OptionalAddedNoBump)
    assert not report.ok
    assert not report.has_breaking
    assert 'set schema_version to "1.1"' in report.render()


def test_new_and_removed_contract_versions() -> None:
    old = snapshot_of(Base)
    assert not evaluate({}, {old.key: old}).ok
    removed = evaluate({old.key: old}, {})
    assert removed.has_breaking
    assert "contract version removed" in removed.render()


def test_cli_check_passes_on_the_committed_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(CONTRACTS_DIR), "check"]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_cli_check_fails_on_a_tampered_snapshot_and_update_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, root, ignore=shutil.ignore_patterns("src", "*.toml"))
    target = root / "snapshot" / "erp.journal.requested.v1.json"
    # Pretend the committed snapshot had a field that today's code no longer has.
    target.write_text(target.read_text().replace('"$.company"', '"$.legal_entity"'))
    assert cli.main(["--root", str(root), "check"]) == 1
    out = capsys.readouterr().out
    assert "BREAKING field removed or renamed" in " ".join(out.split())
    assert "$.legal_entity" in out
    assert cli.main(["--root", str(root), "check", "--update"]) == 1
    assert "Refusing" in capsys.readouterr().out
    assert cli.main(["--root", str(root), "check", "--update", "--allow-breaking"]) == 0
    capsys.readouterr()
    assert cli.main(["--root", str(root), "check"]) == 0
