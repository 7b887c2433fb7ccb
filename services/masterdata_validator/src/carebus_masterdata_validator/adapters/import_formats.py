"""Reading bulk imports: CSV (a header row of field names) or a JSON array of records.

CSV columns are the record's field names; empty cells mean "not given". A location's
address is spread over ``address_lines`` (lines separated by ``|``), ``address_city``,
``address_state``, ``address_postal_code`` and ``address_country``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from carebus_contracts.envelope import Contract
from carebus_contracts.rule_text import rule_only
from carebus_masterdata_validator.domain.kinds import KindSpec
from carebus_masterdata_validator.domain.problems import FieldError, Problem

_PATH_RE = re.compile(r" - at `\$(?:\[\d+\])?\.?([^`]*)`$")
_ADDRESS = "address_"


@dataclass
class ParsedRow:
    row: int  # CSV: the line number (the header is line 1); JSON: the array index + 1
    record: Contract | None
    errors: list[FieldError] = field(default_factory=list)


def field_of(error: msgspec.ValidationError | msgspec.DecodeError) -> tuple[str, str]:
    """(field, message) from msgspec's "Expected … - at `$.npi`"."""
    text = str(error)
    match = _PATH_RE.search(text)
    if match is None:
        missing = re.search(r"missing required field `([^`]+)`", text)
        return (missing.group(1) if missing else "$"), rule_only(text)
    return (match.group(1) or "$"), rule_only(text[: match.start()])


def _convert(spec: KindSpec, number: int, data: Any, *, strict: bool) -> ParsedRow:
    try:
        record: Contract = msgspec.convert(data, spec.model, strict=strict)
    except msgspec.ValidationError as exc:
        name, message = field_of(exc)
        return ParsedRow(number, None, [FieldError(name, message)])
    return ParsedRow(number, record)


def _csv_row(row: dict[str, str | None]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    address: dict[str, Any] = {}
    for column, raw in row.items():
        value = (raw or "").strip()
        if not column or not value:
            continue
        if column.startswith(_ADDRESS):
            name = column[len(_ADDRESS) :]
            address[name] = value.split("|") if name == "lines" else value
        else:
            data[column] = value
    if address:
        data["address"] = address
    return data


def parse_csv(spec: KindSpec, body: bytes) -> list[ParsedRow]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Problem(400, "Unreadable import", f"CSV must be UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    known = set(spec.columns) | {f"{_ADDRESS}{n}" for n in ("lines", "city", "state")}
    known |= {f"{_ADDRESS}postal_code", f"{_ADDRESS}country"}
    # By position: a header line that is a data row by mistake must not be echoed.
    unknown = [str(n) for n, c in enumerate(reader.fieldnames or [], 1) if c not in known]
    if not reader.fieldnames:
        raise Problem(400, "Unreadable import", "the CSV has no header row")
    if unknown:
        raise Problem(
            400,
            "Unreadable import",
            f"unknown column(s) at header position {', '.join(unknown)}; "
            f"a {spec.name} has {', '.join(spec.columns)}",
            [FieldError(f"column {n}", "unknown column") for n in unknown],
        )
    # Lax conversion: CSV cells are text ("true", "2025-01-01").
    return [_convert(spec, reader.line_num, _csv_row(row), strict=False) for row in reader]


def parse_json(spec: KindSpec, body: bytes) -> list[ParsedRow]:
    try:
        items = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise Problem(400, "Unreadable import", f"not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise Problem(400, "Unreadable import", "a JSON import is an array of records")
    return [_convert(spec, i, item, strict=True) for i, item in enumerate(items, 1)]
