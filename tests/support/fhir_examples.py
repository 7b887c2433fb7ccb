"""The official FHIR R4 examples the tests send (``tests/data/fhir-r4/hl7-fhir-r4-examples``,
from the ``hl7.fhir.r4.examples`` package) and the committed outcome of each
(``tests/fhir/official_example_expectations.tsv``): accepted with which events, or refused
with which status and reason where."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.samples import SAMPLES, TESTS_DIR

EXAMPLES_DIR = "fhir-r4/hl7-fhir-r4-examples"


def fhir_headers(site: str) -> dict[str, str]:
    """A FHIR JSON body sent for ``site``, as the adapters' FHIR routes take it."""
    return {"Content-Type": "application/fhir+json", "X-Carebus-Site": site}


EXPECTATIONS = TESTS_DIR / "fhir" / "official_example_expectations.tsv"


@dataclass(frozen=True)
class Expected:
    path: str  # relative to the samples folder
    adapter: str  # scheduling | billing
    accepted: bool
    event_types: tuple[str, ...] = ()
    status: int | None = None
    reason: str | None = None
    expression: str | None = None

    @property
    def file(self) -> Path:
        return SAMPLES / self.path

    @property
    def resource_type(self) -> str:
        return Path(self.path).name.split("-", 1)[0]


def expectations(adapter: str | None = None) -> list[Expected]:
    found = []
    for line in EXPECTATIONS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, owner, outcome, detail = line.split("\t")
        if adapter is not None and owner != adapter:
            continue
        if outcome == "accepted":
            found.append(Expected(path, owner, True, tuple(detail.split(","))))
        else:
            status, where = detail.split(" ", 1)
            reason, expression = where.split("@", 1)
            found.append(Expected(path, owner, False, (), int(status), reason, expression))
    return found


def copied_examples() -> list[str]:
    """Every example resource copied from the package (its package.json aside)."""
    folder = SAMPLES / EXAMPLES_DIR
    return sorted(
        p.relative_to(SAMPLES).as_posix() for p in folder.glob("*.json") if p.name != "package.json"
    )


def bundle_of(kind: str, examples: list[Expected]) -> bytes:
    """A transaction or batch Bundle creating each example, the resource unchanged."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:example-{n}",
            "resource": json.loads(e.file.read_bytes()),
            "request": {"method": "POST", "url": e.resource_type},
        }
        for n, e in enumerate(examples)
    ]
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}).encode()
