"""The governed master-data use cases: create, read, update, deactivate, import.

Each write is one transaction: the record, its audit row (who, when, before, after), its
entry in the shared audit log and its change event in the outbox commit together or not at
all; the outbox drainer then publishes the event on MASTERDATA and the record into the KV
bucket (the read model).
Optimistic concurrency: updates name the version they replace (If-Match); a stale one fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import msgspec

from carebus_contracts.envelope import Contract
from carebus_contracts.masterdata import ChangeKind, CrossReference
from carebus_masterdata_validator.adapters import changes_repo
from carebus_masterdata_validator.adapters import records_repo as repo
from carebus_masterdata_validator.adapters.import_formats import ParsedRow
from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.records_repo import Stored
from carebus_masterdata_validator.domain import rules
from carebus_masterdata_validator.domain.kinds import KindSpec
from carebus_masterdata_validator.domain.problems import FieldError, Problem, invalid, not_found
from carebus_shared import audit

_KEY_RE = re.compile(r"Key \(([^)]+)\)")


@dataclass(frozen=True)
class Caller:
    actor: str
    request_id: str


@dataclass
class RowResult:
    row: int
    id: str | None
    status: str  # created | updated | unchanged | error
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class ImportReport:
    kind: str
    dry_run: bool
    committed: bool
    counts: dict[str, int]
    rows: list[RowResult]


def _db_problem(exc: asyncpg.PostgresError) -> list[FieldError]:
    """A constraint the database enforced, as field errors (the checks above catch most)."""
    detail = getattr(exc, "detail", None) or str(exc)
    match = _KEY_RE.search(detail)
    name = match.group(1) if match else (getattr(exc, "column_name", None) or "$")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return [FieldError(name, f"already used by another record ({detail})")]
    return [FieldError(name, detail)]


class MasterData:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        changed: Callable[[], None],
        metrics: ValidatorMetrics,
    ) -> None:
        self._pool = pool
        self._changed = changed  # wakes the outbox drainer after a commit
        self._metrics = metrics

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, spec: KindSpec, record_id: str) -> Stored:
        _check_id(spec, record_id)
        async with self._pool().acquire() as conn:
            stored = await repo.get(conn, spec, record_id)
        if stored is None:
            raise not_found(spec.name, record_id)
        return stored

    async def list_page(
        self,
        spec: KindSpec,
        *,
        filters: dict[str, str],
        active: bool | None,
        valid_on: date | None,
        name_contains: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Stored], str | None]:
        unknown = sorted(set(filters) - set(spec.filters))
        if unknown:
            allowed = ", ".join(spec.filters) or "none"
            raise Problem(
                400,
                "Unknown filter",
                f"{spec.collection} cannot be filtered by {', '.join(unknown)} "
                f"(filters: {allowed})",
                [FieldError(name, "unknown filter") for name in unknown],
            )
        if cursor is not None:
            _check_id(spec, cursor, field_name="cursor")
        async with self._pool().acquire() as conn:
            page = await repo.list_page(
                conn,
                spec,
                filters=filters,
                active=active,
                valid_on=valid_on,
                name_contains=name_contains,
                after=cursor,
                limit=limit,
            )
        next_cursor = spec.record_id(page[-1].record) if len(page) == limit else None
        return page, next_cursor

    async def history(self, spec: KindSpec, record_id: str) -> list[changes_repo.AuditEntry]:
        await self.get(spec, record_id)
        async with self._pool().acquire() as conn:
            return await changes_repo.history(conn, spec.name, record_id)

    # -- writes --------------------------------------------------------------------------------
    async def create(self, spec: KindSpec, record: Contract, caller: Caller) -> Stored:
        _check_rules(spec, record)
        record_id = spec.record_id(record)
        async with self._pool().acquire() as conn, conn.transaction():
            if await repo.get(conn, spec, record_id, for_update=True) is not None:
                raise Problem(
                    409,
                    "Already exists",
                    f"{spec.name} {record_id!r} exists; update it with PUT and If-Match",
                    [FieldError(spec.key_fields[-1], "already exists")],
                )
            await self._check_references(conn, spec, record)
            stored = await self._write(conn, spec, None, record, "create", caller)
        self._changed()
        return stored

    async def update(
        self, spec: KindSpec, record_id: str, record: Contract, if_match: int, caller: Caller
    ) -> Stored:
        _check_id(spec, record_id)
        if spec.record_id(record) != record_id:
            raise invalid(
                [
                    FieldError(
                        spec.key_fields[-1], f"does not match the id in the path {record_id!r}"
                    )
                ]
            )
        _check_rules(spec, record)
        async with self._pool().acquire() as conn, conn.transaction():
            current = await self._current(conn, spec, record_id, if_match)
            if current.record == record:
                return current
            await self._check_references(conn, spec, record)
            stored = await self._write(conn, spec, current, record, "update", caller)
        self._changed()
        return stored

    async def deactivate(
        self, spec: KindSpec, record_id: str, if_match: int, caller: Caller
    ) -> Stored:
        _check_id(spec, record_id)
        async with self._pool().acquire() as conn, conn.transaction():
            current = await self._current(conn, spec, record_id, if_match)
            if not getattr(current.record, "active", True):
                return current
            record = msgspec.structs.replace(current.record, active=False)
            stored = await self._write(conn, spec, current, record, "deactivate", caller)
        self._changed()
        return stored

    async def import_rows(
        self, spec: KindSpec, parsed: list[ParsedRow], caller: Caller, *, dry_run: bool
    ) -> ImportReport:
        """All rows or none: any row in error rolls the whole import back."""
        results: list[RowResult] = []
        seen: dict[str, int] = {}
        async with self._pool().acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                for item in parsed:
                    results.append(await self._import_row(conn, spec, item, caller, seen))
            except BaseException:
                await tx.rollback()
                raise
            failed = any(r.status == "error" for r in results)
            if failed or dry_run:
                await tx.rollback()
            else:
                await tx.commit()
        committed = not failed and not dry_run
        counts = {s: 0 for s in ("created", "updated", "unchanged", "error")}
        for r in results:
            counts[r.status] += 1
        if committed and (counts["created"] or counts["updated"]):
            self._changed()
        return ImportReport(spec.name, dry_run, committed, counts, results)

    async def _import_row(
        self,
        conn: asyncpg.Connection,
        spec: KindSpec,
        item: ParsedRow,
        caller: Caller,
        seen: dict[str, int],
    ) -> RowResult:
        if item.record is None:
            return RowResult(item.row, None, "error", item.errors)
        record = item.record
        record_id = spec.record_id(record)
        errors = rules.check(spec, record)
        if record_id in seen:
            errors.append(FieldError(spec.key_fields[-1], f"repeats row {seen[record_id]}"))
        seen.setdefault(record_id, item.row)
        if errors:
            return RowResult(item.row, record_id, "error", errors)
        try:
            async with conn.transaction():  # a savepoint: one row's failure spares the others
                current = await repo.get(conn, spec, record_id, for_update=True)
                if current is not None and current.record == record:
                    return RowResult(item.row, record_id, "unchanged")
                await self._check_references(conn, spec, record)
                await self._write(conn, spec, current, record, "import", caller)
        except Problem as problem:
            return RowResult(item.row, record_id, "error", problem.errors)
        except asyncpg.IntegrityConstraintViolationError as exc:
            return RowResult(item.row, record_id, "error", _db_problem(exc))
        return RowResult(item.row, record_id, "created" if current is None else "updated")

    # -- shared steps --------------------------------------------------------------------------
    async def _current(
        self, conn: asyncpg.Connection, spec: KindSpec, record_id: str, if_match: int
    ) -> Stored:
        current = await repo.get(conn, spec, record_id, for_update=True)
        if current is None:
            raise not_found(spec.name, record_id)
        if current.version != if_match:
            raise Problem(
                412,
                "Precondition failed",
                f"{spec.name} {record_id!r} is at version {current.version}, not {if_match}: "
                "someone changed it since you read it; read it again and re-apply your change",
                extra={"current_version": current.version},
            )
        return current

    async def _check_references(
        self, conn: asyncpg.Connection, spec: KindSpec, record: Contract
    ) -> None:
        errors = []
        for name, kind in spec.references:
            value = getattr(record, name)
            if value is not None and not await repo.exists(conn, kind, value):
                errors.append(FieldError(name, f"no {kind.value.replace('_', ' ')} {value!r}"))
        if isinstance(record, CrossReference) and not await repo.exists(
            conn, record.kind, record.canonical_id
        ):
            errors.append(
                FieldError("canonical_id", f"no {record.kind.value} {record.canonical_id!r}")
            )
        if errors:
            raise invalid(errors)

    async def _write(
        self,
        conn: asyncpg.Connection,
        spec: KindSpec,
        current: Stored | None,
        record: Contract,
        action: str,
        caller: Caller,
    ) -> Stored:
        version = current.version + 1 if current is not None else 1
        try:
            if current is None:
                stored = await repo.insert(conn, spec, record, version, caller.actor)
            else:
                stored = await repo.update(conn, spec, record, version, caller.actor)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise invalid(_db_problem(exc)) from exc
        active = getattr(record, "active", True)
        change = ChangeKind.UPSERTED if active else ChangeKind.DEACTIVATED
        record_id = spec.record_id(record)
        event = spec.change_event(
            record, change, version, at=datetime.now(UTC), correlation_id=caller.request_id
        )
        await changes_repo.audit(
            conn,
            actor=caller.actor,
            action=action,
            kind=spec.name,
            record_id=record_id,
            version=version,
            request_id=caller.request_id,
            before=current.record if current is not None else None,
            after=record,
        )
        await changes_repo.enqueue(conn, event, spec.kv_key(record_id))
        # In the change's transaction: audited if and only if it happened.
        await audit.record(
            conn, actor=caller.actor, action="masterdata_change", target_kind=spec.name,
            target_id=record_id, outcome=action,
            detail={"version": version, "request_id": caller.request_id},
        )  # fmt: skip
        self._metrics.changes.labels(spec.name, action).inc()
        return stored


def _check_rules(spec: KindSpec, record: Contract) -> None:
    errors = rules.check(spec, record)
    if errors:
        raise invalid(errors)


def _check_id(spec: KindSpec, record_id: str, field_name: str = "id") -> None:
    try:
        spec.key_values(record_id)
    except ValueError as exc:
        raise Problem(400, "Bad id", str(exc), [FieldError(field_name, str(exc))]) from exc


def as_dict(stored: Stored) -> dict[str, Any]:
    """A record with its version and last change, for list pages."""
    data: dict[str, Any] = msgspec.to_builtins(stored.record)
    data["version"] = stored.version
    data["updated_at"] = stored.updated_at.isoformat()
    data["updated_by"] = stored.updated_by
    return data
