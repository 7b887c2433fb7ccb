"""PostgreSQL access to the system-of-record tables, generic over :class:`KindSpec`.

SQL is built from the spec's table and column names (constants, never request input);
values always travel as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import msgspec

from carebus_contracts.envelope import Contract
from carebus_contracts.masterdata import EntityKind
from carebus_masterdata_validator.config import SCHEMA
from carebus_masterdata_validator.domain.kinds import KindSpec

# The table and id column of each kind a record may reference.
REFERENCED: dict[EntityKind, tuple[str, str]] = {
    EntityKind.PROVIDER: ("provider", "provider_id"),
    EntityKind.LOCATION: ("location", "location_id"),
    EntityKind.DEPARTMENT: ("department", "department_id"),
    EntityKind.SERVICE: ("service", "service_code"),
    EntityKind.PAYER: ("payer", "payer_id"),
    EntityKind.COST_CENTRE: ("cost_centre", "cost_centre_id"),
}


@dataclass(frozen=True)
class Stored:
    record: Contract
    version: int
    updated_at: datetime
    updated_by: str


def _table(spec: KindSpec) -> str:
    return f"{SCHEMA}.{spec.table}"


def _values(spec: KindSpec, record: Contract) -> list[Any]:
    values = []
    for column in spec.columns:
        value = getattr(record, column)
        if column in spec.json_columns and value is not None:
            value = msgspec.json.encode(value).decode()
        values.append(value)
    return values


def _placeholders(spec: KindSpec, start: int = 1) -> str:
    return ", ".join(
        f"${i}::jsonb" if column in spec.json_columns else f"${i}"
        for i, column in enumerate(spec.columns, start)
    )


def to_record(spec: KindSpec, row: Any) -> Contract:
    data = {}
    for column in spec.columns:
        value = row[column]
        if column in spec.json_columns and isinstance(value, str):
            value = msgspec.json.decode(value)
        data[column] = value
    record: Contract = msgspec.convert(data, spec.model)
    return record


def _stored(spec: KindSpec, row: Any) -> Stored:
    return Stored(to_record(spec, row), row["version"], row["updated_at"], row["updated_by"])


def _key_match(spec: KindSpec, start: int = 1) -> str:
    return " AND ".join(f"{name} = ${i}" for i, name in enumerate(spec.key_fields, start))


async def get(
    conn: Any, spec: KindSpec, record_id: str, *, for_update: bool = False
) -> Stored | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT * FROM {_table(spec)} WHERE {_key_match(spec)}{lock}", *spec.key_values(record_id)
    )
    return _stored(spec, row) if row is not None else None


async def insert(conn: Any, spec: KindSpec, record: Contract, version: int, actor: str) -> Stored:
    n = len(spec.columns)
    row = await conn.fetchrow(
        f"INSERT INTO {_table(spec)} ({', '.join(spec.columns)}, version, updated_by) "
        f"VALUES ({_placeholders(spec)}, ${n + 1}, ${n + 2}) RETURNING *",
        *_values(spec, record),
        version,
        actor,
    )
    return _stored(spec, row)


async def update(conn: Any, spec: KindSpec, record: Contract, version: int, actor: str) -> Stored:
    n = len(spec.columns)
    assignments = ", ".join(
        f"{column} = ${i}::jsonb" if column in spec.json_columns else f"{column} = ${i}"
        for i, column in enumerate(spec.columns, 1)
    )
    keys = [getattr(record, name) for name in spec.key_fields]
    row = await conn.fetchrow(
        f"UPDATE {_table(spec)} SET {assignments}, version = ${n + 1}, updated_by = ${n + 2}, "
        f"updated_at = now() WHERE {_key_match(spec, n + 3)} RETURNING *",
        *_values(spec, record),
        version,
        actor,
        *keys,
    )
    return _stored(spec, row)


async def exists(conn: Any, kind: EntityKind, canonical_id: str) -> bool:
    table, column = REFERENCED[kind]
    found = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.{table} WHERE {column} = $1)", canonical_id
    )
    return bool(found)


async def list_page(
    conn: Any,
    spec: KindSpec,
    *,
    filters: dict[str, str],
    active: bool | None,
    valid_on: date | None,
    name_contains: str | None,
    after: str | None,
    limit: int,
) -> list[Stored]:
    """One page in key order, after the record ``after`` (keyset pagination)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, value in filters.items():
        where.append(f"{column}::text = {arg(value)}")
    if active is not None:
        where.append(f"active = {arg(active)}")
    if valid_on is not None:
        on = arg(valid_on)
        where.append(f"(valid_from IS NULL OR valid_from <= {on})")
        where.append(f"(valid_to IS NULL OR {on} <= valid_to)")
    if name_contains and "name" in spec.columns:
        where.append(f"name ILIKE {arg('%' + _escape_like(name_contains) + '%')}")
    keys = ", ".join(spec.key_fields)
    if after is not None:
        placeholders = ", ".join(arg(value) for value in spec.key_values(after))
        where.append(f"({keys}) > ({placeholders})")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = await conn.fetch(
        f"SELECT * FROM {_table(spec)}{clause} ORDER BY {keys} LIMIT {arg(limit)}", *args
    )
    return [_stored(spec, row) for row in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
