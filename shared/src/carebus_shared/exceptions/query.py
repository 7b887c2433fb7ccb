"""Finding exception records: filters, newest-first keyset paging with an opaque cursor, totals.

A filter's ``stage`` is a stage's name ('masterdata-validator-billing') or its contract
stage ('masterdata_validator', matching every consumer of that stage); ``reason`` is a
category ('masterdata') or a reason code ('unknown_payer').
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from carebus_shared.exceptions.redrive import MAX_RECORD_ID

STATUSES: Final = ("open", "redriven", "discarded", "resolved")
MAX_PAGE: Final = 500
_CURSOR_PREFIX: Final = "v1:"
_TABLE: Final = "carebus_exceptions.exception_record"
# What a list shows: no raw input, headers or offending value (PHI stays behind `get`).
LIST_COLUMNS: Final = (
    "id, recorded_at, stage, category, reason, message, source, site, event_id, stream, "
    "stream_seq, subject, path, status, resolved_at, resolved_by, resolution_note, "
    "octet_length(raw) AS raw_bytes"
)


class InvalidQuery(ValueError):
    """A filter or cursor the caller got wrong; ``field`` names it (never its value)."""

    def __init__(self, field_name: str, rule: str) -> None:
        self.field = field_name
        self.rule = rule
        super().__init__(f"{field_name}: {rule}")


@dataclass(frozen=True, slots=True)
class ExceptionFilter:
    site: str | None = None
    stage: str | None = None
    reason: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise InvalidQuery("status", f"must be one of {', '.join(STATUSES)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidQuery(name, "must carry a time zone (e.g. Z or +01:00)")
        if self.since and self.until and self.since > self.until:
            raise InvalidQuery("since", "must not be after until")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None
    filter: ExceptionFilter = field(default_factory=ExceptionFilter)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(flt: ExceptionFilter, first_arg: int = 1) -> tuple[str, list[Any]]:
    """The WHERE clause (``TRUE`` when empty) and its arguments, numbered from ``first_arg``."""
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${first_arg + len(args) - 1}"

    if flt.site is not None:
        clauses.append(f"site = {arg(flt.site)}")
    if flt.stage is not None:
        normalised = flt.stage.replace("-", "_")
        prefix = _escape_like(normalised) + "\\_%"  # its consumers: '<stage>_<suffix>'
        clauses.append(
            f"(replace(stage, '-', '_') = {arg(normalised)} "
            f"OR replace(stage, '-', '_') LIKE {arg(prefix)})"
        )
    if flt.reason is not None:
        value = arg(flt.reason)
        clauses.append(f"(category = {value} OR reason = {value})")
    if flt.status is not None:
        clauses.append(f"status = {arg(flt.status)}")
    if flt.since is not None:
        clauses.append(f"recorded_at >= {arg(flt.since)}")
    if flt.until is not None:
        clauses.append(f"recorded_at < {arg(flt.until)}")
    return (" AND ".join(clauses) or "TRUE"), args


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidQuery("cursor", "is not a cursor this API gave out") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not digits.isascii() or not digits.isdigit():
        raise InvalidQuery("cursor", "is not a cursor this API gave out")
    last_id = int(digits)
    if not 0 < last_id <= MAX_RECORD_ID:
        raise InvalidQuery("cursor", "is not a cursor this API gave out")
    return last_id


async def search(
    conn: Any, flt: ExceptionFilter, cursor: str | None = None, limit: int = 50
) -> Page:
    """One page of matching records, newest first, and how many match in all."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery("limit", f"must be between 1 and {MAX_PAGE}")
    before = decode_cursor(cursor) if cursor else None
    clause, args = where(flt)
    total = await conn.fetchval(f"SELECT count(*) FROM {_TABLE} WHERE {clause}", *args)
    keyset, page_args = clause, list(args)
    if before is not None:
        page_args.append(before)
        keyset += f" AND id < ${len(page_args)}"
    page_args.append(limit + 1)  # one more than asked says whether a next page exists
    rows = await conn.fetch(
        f"SELECT {LIST_COLUMNS} FROM {_TABLE} WHERE {keyset} ORDER BY id DESC "
        f"LIMIT ${len(page_args)}",
        *page_args,
    )
    items = [dict(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, int(total), encode_cursor(items[-1]["id"]) if more else None, flt)


async def open_ids(conn: Any, flt: ExceptionFilter, limit: int) -> tuple[int, list[int]]:
    """How many open records match, and the oldest ``limit`` of their ids (re-driven in the
    order they failed)."""
    flt = ExceptionFilter(flt.site, flt.stage, flt.reason, "open", flt.since, flt.until)
    clause, args = where(flt)
    total = await conn.fetchval(f"SELECT count(*) FROM {_TABLE} WHERE {clause}", *args)
    rows = await conn.fetch(
        f"SELECT id FROM {_TABLE} WHERE {clause} ORDER BY id LIMIT ${len(args) + 1}",
        *args,
        limit,
    )
    return int(total), [int(row["id"]) for row in rows]
