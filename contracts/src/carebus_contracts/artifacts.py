"""Generated files under ``contracts/``: JSON Schemas, the AsyncAPI document, golden examples.

* ``schemas/<event type>/v<major>.<minor>.schema.json`` – one per contract version.  Only
  the current version's file is (re)written; older ones stay as history.
* ``asyncapi.json`` – rewritten from the registry every time.
* ``examples/<event type>/v<major>.<minor>/<name>.json`` – written once, never rewritten.
* ``snapshot/`` – the gate's baseline, written only by ``check --update``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from carebus_contracts.asyncapi import build_document
from carebus_contracts.envelope import Event
from carebus_contracts.examples import build_examples
from carebus_contracts.registry import ContractInfo, Registry, encode
from carebus_contracts.schema_gate import flatten_schema

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def schemas(self) -> Path:
        return self.root / "schemas"

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot"

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def asyncapi(self) -> Path:
        return self.root / "asyncapi.json"

    def schema_file(self, event_type: str, version: str) -> Path:
        return self.schemas / event_type / f"v{version}.schema.json"

    def example_dir(self, event_type: str, version: str) -> Path:
        return self.examples / event_type / f"v{version}"


def default_layout() -> Layout:
    """``$CAREBUS_CONTRACTS_ROOT``, else the source tree this package runs from, else
    ``./contracts``."""
    env = os.environ.get("CAREBUS_CONTRACTS_ROOT")
    if env:
        return Layout(Path(env))
    source_root = Path(__file__).resolve().parents[2]
    if (source_root / "pyproject.toml").is_file() and (source_root / "src").is_dir():
        return Layout(source_root)
    return Layout(Path.cwd() / "contracts")


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def schema_document(info: ContractInfo) -> dict[str, Any]:
    schema = msgspec.json.schema(info.type)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"{info.event_type} {info.version}",
        "x-carebus-subject": info.address,
        **schema,
    }


def example_text(event: Event) -> str:
    return msgspec.json.format(encode(event), indent=2).decode() + "\n"


def regenerable(layout: Layout, registry: Registry) -> dict[Path, str]:
    """Files that must always equal freshly generated output."""
    files = {layout.asyncapi: _dump(build_document(registry))}
    for info in registry.contracts():
        files[layout.schema_file(info.event_type, info.version)] = _dump(schema_document(info))
    return files


def new_examples(layout: Layout, registry: Registry) -> dict[Path, str]:
    """Examples of the registered versions that are not committed yet."""
    files: dict[Path, str] = {}
    for event, name in build_examples():
        info = registry.info(event)
        path = layout.example_dir(info.event_type, info.version) / f"{name}.json"
        if not path.exists():
            files[path] = example_text(event)
    return files


def stale(layout: Layout, registry: Registry) -> list[Path]:
    """Generated files that are missing or differ from what ``generate`` would write."""
    out = [p for p, text in regenerable(layout, registry).items() if _read(p) != text]
    return sorted([*out, *new_examples(layout, registry)])


class PublishedSchemaChanged(RuntimeError):
    """The wire shape of an already generated version changed: it needs a version bump."""


def generate(layout: Layout, registry: Registry) -> list[Path]:
    """Write every stale file; return the paths written.

    A schema file whose wire shape differs is history: it is never rewritten (only
    descriptions may change in place), so the change must come with a version bump.
    """
    files = {**regenerable(layout, registry), **new_examples(layout, registry)}
    refused = [
        path
        for path, text in files.items()
        if path.name.endswith(".schema.json")
        and (old := _read(path)) is not None
        and flatten_schema(json.loads(old)) != flatten_schema(json.loads(text))
    ]
    if refused:
        names = ", ".join(str(p.relative_to(layout.root)) for p in sorted(refused))
        raise PublishedSchemaChanged(
            f"the wire shape of published versions changed ({names}): bump schema_version "
            "(see `carebus-contracts check`)"
        )
    written: list[Path] = []
    for path, text in sorted(files.items()):
        if _read(path) != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
