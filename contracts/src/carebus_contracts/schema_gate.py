"""The compatibility gate: compare today's contracts with the committed snapshot.

A snapshot flattens a contract's JSON Schema into one entry per wire path
(``$.lines[].amount.amount_minor``) with its type, constraints, whether it is required,
its default and its enum values.  Comparing two snapshots of the same major then finds,
path by path, the changes that break readers or writers within a major version:

* a field removed or renamed on the wire, a type or constraint changed,
* a required field added, a field made required or optional,
* an enum value removed, a default changed.

Safe changes (an optional field added; an enum value added, with a warning) pass, but must
come with a minor version bump.  Class names, titles and descriptions are not on the wire,
so they are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from carebus_contracts.envelope import Event, event_type_of, version_of

_CONSTRAINTS: Final = (
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "contentEncoding",
)
# The version field's default *is* the version: it changes on every bump by design.
_VERSION_FIELD: Final = "schema_version"

FieldShape = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    event_type: str
    major: int
    minor: int
    fields: dict[str, FieldShape]

    @property
    def key(self) -> str:
        return f"{self.event_type}.v{self.major}"

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"

    def to_json(self) -> str:
        body = {
            "event_type": self.event_type,
            "major": self.major,
            "minor": self.minor,
            "fields": self.fields,
        }
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        body = json.loads(text)
        return cls(body["event_type"], body["major"], body["minor"], body["fields"])


def snapshot_of(cls: type[Event]) -> Snapshot:
    major, minor = version_of(cls)
    return Snapshot(event_type_of(cls), major, minor, flatten_schema(msgspec.json.schema(cls)))


def flatten_schema(schema: Mapping[str, Any]) -> dict[str, FieldShape]:
    """One entry per wire path of a msgspec-generated JSON Schema."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    out: dict[str, FieldShape] = {}
    _walk(schema, defs, "$", True, out, ())
    return out


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return defs[name], name
    return node, ""


def _walk(
    node: Mapping[str, Any],
    defs: Mapping[str, Any],
    path: str,
    required: bool,
    out: dict[str, FieldShape],
    seen: tuple[str, ...],
) -> None:
    alternatives = node.get("anyOf", [node])
    kinds: list[str] = []
    enum_values: list[Any] = []
    for raw in alternatives:
        alt, name = _resolve(raw, defs)
        if name and name in seen:  # recursive type: describe, do not descend again
            kinds.append(f"object(recursive {name})")
            continue
        inner_seen = (*seen, name) if name else seen
        if "enum" in alt:
            kinds.append("enum")
            enum_values.extend(alt["enum"])
        elif "properties" in alt:
            kinds.append("object")
            needed = set(alt.get("required", ()))
            for prop, sub in alt["properties"].items():
                _walk(sub, defs, f"{path}.{prop}", prop in needed, out, inner_seen)
        elif alt.get("type") == "array":
            kinds.append(_describe("array", alt))
            _walk(alt.get("items", {}), defs, f"{path}[]", True, out, inner_seen)
        elif alt.get("type") == "object" and isinstance(alt.get("additionalProperties"), dict):
            kinds.append("map")
            _walk(alt["additionalProperties"], defs, f"{path}{{}}", True, out, inner_seen)
        else:
            kinds.append(_describe(str(alt.get("type", "any")), alt))
    shape: FieldShape = {"type": "|".join(sorted(kinds)), "required": required}
    if enum_values:
        shape["enum"] = sorted(enum_values, key=repr)
    if "default" in node and not path.endswith(f".{_VERSION_FIELD}"):
        shape["default"] = json.loads(json.dumps(node["default"]))  # tuples -> lists
    out[path] = shape


def _describe(kind: str, node: Mapping[str, Any]) -> str:
    constraints = [f"{key}={node[key]}" for key in _CONSTRAINTS if key in node]
    return f"{kind}[{', '.join(constraints)}]" if constraints else kind


@dataclass(frozen=True)
class Change:
    kind: str
    path: str
    detail: str
    breaking: bool
    warning: str = ""


def _parent(path: str) -> str:
    if path.endswith(("[]", "{}")):
        return path[:-2]
    return path.rsplit(".", 1)[0] if "." in path else ""


def compare(old: Snapshot, new: Snapshot) -> list[Change]:
    """Every difference between two snapshots of one major, classified."""
    changes: list[Change] = []
    removed = [p for p in old.fields if p not in new.fields]
    for path in removed:
        if _parent(path) in removed:
            continue  # report the outermost removed field only
        was = old.fields[path]
        changes.append(
            Change("field removed or renamed", path, f"was {_render(was)}", breaking=True)
        )
    for path, shape in new.fields.items():
        before = old.fields.get(path)
        if before is None:
            if _parent(path) not in old.fields:
                continue  # inside a newly added field: that field's entry covers it
            if shape["required"]:
                changes.append(Change("required field added", path, _render(shape), True))
            else:
                changes.append(Change("optional field added", path, _render(shape), False))
            continue
        changes.extend(_compare_field(path, before, shape))
    return changes


def _compare_field(path: str, old: FieldShape, new: FieldShape) -> list[Change]:
    changes: list[Change] = []
    if old["type"] != new["type"]:
        changes.append(Change("type changed", path, f"{old['type']} -> {new['type']}", True))
    if old["required"] != new["required"]:
        kind = "field made required" if new["required"] else "field made optional"
        changes.append(Change(kind, path, "", True))
    old_enum, new_enum = old.get("enum", []), new.get("enum", [])
    gone = [v for v in old_enum if v not in new_enum]
    added = [v for v in new_enum if v not in old_enum]
    if gone:
        changes.append(Change("enum value removed", path, _values(gone), True))
    if added:
        changes.append(
            Change(
                "enum value added",
                path,
                _values(added),
                False,
                warning="readers on an older minor reject the new value: deploy consumers first",
            )
        )
    if old.get("default", _MISSING) != new.get("default", _MISSING):
        before = _default(old)
        after = _default(new)
        changes.append(Change("default changed", path, f"{before} -> {after}", True))
    return changes


_MISSING: Final = object()


def _render(shape: FieldShape) -> str:
    required = "required" if shape["required"] else "optional"
    return f"{shape['type']}, {required}"


def _values(values: Iterable[Any]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _default(shape: FieldShape) -> str:
    return json.dumps(shape["default"]) if "default" in shape else "(none)"


@dataclass
class ContractResult:
    key: str
    old_version: str | None
    new_version: str | None
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def ok(self) -> bool:
        return not self.breaking and not self.problems


@dataclass
class GateReport:
    results: list[ContractResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def has_breaking(self) -> bool:
        return any(r.breaking for r in self.results)

    def render(self) -> str:
        lines: list[str] = []
        for result in self.results:
            if not result.changes and not result.problems:
                continue
            versions = f"{result.old_version or '-'} -> {result.new_version or '-'}"
            lines.append(f"{result.key} ({versions})")
            for change in result.changes:
                label = "BREAKING" if change.breaking else "ok"
                detail = f"  ({change.detail})" if change.detail else ""
                lines.append(f"  {label:<9}{change.kind:<26}{change.path}{detail}")
                if change.warning:
                    lines.append(f"  {'':<9}warning: {change.warning}")
            lines.extend(f"  PROBLEM  {problem}" for problem in result.problems)
        if self.ok:
            status = "contracts are compatible with the snapshot"
            lines.insert(0, f"OK: {status}" + (":" if lines else "."))
            return "\n".join(lines)
        lines.insert(0, "FAILED: contracts are not compatible with the committed snapshot:")
        if self.has_breaking:
            lines.append(
                "A BREAKING change needs a new major version: keep the old class, add "
                'e.g. FooV2 with schema_version "2.0" and an @upcaster from v1, '
                "or undo the change. See contracts/README.md."
            )
        return "\n".join(lines)


def evaluate(old: Mapping[str, Snapshot], new: Mapping[str, Snapshot]) -> GateReport:
    """Compare snapshots keyed by ``<event type>.v<major>``."""
    results: list[ContractResult] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        result = ContractResult(
            key, before.version if before else None, after.version if after else None
        )
        if before is None:
            result.problems.append(
                "new contract version is not in the snapshot: run `carebus-contracts check "
                "--update` and commit contracts/"
            )
        elif after is None:
            result.changes.append(
                Change("contract version removed", "$", "readers and writers still use it", True)
            )
        else:
            result.changes = compare(before, after)
            if after.minor < before.minor:
                result.problems.append(f"minor version went backwards ({before.version})")
            elif result.changes and not result.breaking and after.minor == before.minor:
                result.problems.append(
                    f"compatible change without a version bump: set schema_version to "
                    f'"{after.major}.{after.minor + 1}", then run `carebus-contracts check '
                    "--update`"
                )
            elif not result.changes and after.minor != before.minor:
                result.problems.append("version bumped but the snapshot is stale: run --update")
        results.append(result)
    return GateReport(results)


def load_snapshots(directory: Path) -> dict[str, Snapshot]:
    snapshots = [Snapshot.from_json(p.read_text()) for p in sorted(directory.glob("*.json"))]
    return {s.key: s for s in snapshots}


def write_snapshots(directory: Path, snapshots: Mapping[str, Snapshot]) -> None:
    """Make ``directory`` hold exactly ``snapshots``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        if stale.stem not in snapshots:
            stale.unlink()
    for key, snapshot in snapshots.items():
        (directory / f"{key}.json").write_text(snapshot.to_json())
