"""The audit log (PostgreSQL, schema carebus_audit; applied by `carebus provision` and by
every service at start): an append-only, hash-chained record of who viewed patient data or
acted on the pipeline (docs/decisions/022).

- :func:`record` appends one entry. It locks the chain's head row, so writers in any
  service or replica take turns and the chain never forks; given a connection inside a
  transaction, the entry commits (or not) with the caller's change.
- :func:`verify` recomputes the chain and returns the first entry that does not match.
- :func:`entries` lists entries, newest first, by time, actor and action.

An entry names its target (a record id, an entity id) but never holds a payload value.
"From where" is the client's network address: an HTTP request's, bound by the auth guard
(:func:`bind_client_address`), or ``cli@<host>`` for the command line.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec

OWNER: Final = "carebus_audit"
PACKAGE: Final = "carebus_shared.audit"
GENESIS: Final = "0" * 64

# What is audited (docs/decisions/022); a new kind of action is added here first.
ACTIONS: Final = (
    "phi_view",
    "redrive",
    "bulk_redrive",
    "discard",
    "replay",
    "release",
    "masterdata_change",
    "rebuild",
    "purge",
)

DetailValue = str | int | float | bool | None
_MAX_TEXT = 200
_origin = f"carebus@{socket.gethostname()}"
# The address of the client this task acts for (an HTTP request's peer), if any.
_client_address: ContextVar[str | None] = ContextVar("carebus_audit_client", default=None)


def bind_client_address(address: str | None) -> None:
    """Entries recorded from now on in this task (a request) come from ``address``."""
    _client_address.set(address)


def client_address() -> str | None:
    """The address bound to this task (:func:`bind_client_address`), if any."""
    return _client_address.get()


def cli_address() -> str:
    return f"cli@{socket.gethostname()}"


def set_origin(name: str) -> None:
    """Where this process's entries come from (its service name; the host is added)."""
    global _origin
    _origin = f"{name}@{socket.gethostname()}"


def origin() -> str:
    return _origin


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    origin: str
    action: str
    target_kind: str
    target_id: str
    outcome: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str
    client_address: str | None = None  # from where (migration 002); None before it

    def content(self) -> bytes:
        """What the hash covers besides the previous hash: every field, in one spelling.
        The address is covered when there is one (entries from before it hash as they did)."""
        extra = {} if self.client_address is None else {"client_address": self.client_address}
        return canonical(
            {
                **extra,
                "seq": self.seq,
                "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
                "actor": self.actor,
                "origin": self.origin,
                "action": self.action,
                "target_kind": self.target_kind,
                "target_id": self.target_id,
                "outcome": self.outcome,
                "detail": self.detail,
            }
        )

    def expected_hash(self) -> str:
        return chain_hash(self.prev_hash, self.content())


@dataclass(frozen=True, slots=True)
class Broken:
    """The first place the chain does not hold, and why."""

    seq: int
    problem: str


def canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + content).hexdigest()


def _clip(text: str) -> str:
    # PostgreSQL text takes no NUL; a bounded length keeps a header from flooding the log.
    return text.replace("\x00", "\ufffd")[:_MAX_TEXT]


async def record(
    db: asyncpg.Pool | Any,
    *,
    actor: str,
    action: str,
    target_kind: str,
    target_id: str | int,
    outcome: str,
    detail: Mapping[str, DetailValue] | None = None,
    client_address: str | None = None,
) -> int:
    """Append one entry; its sequence number. ``db`` is a pool or a connection (inside a
    transaction of the caller's, the entry commits with it). ``detail`` names things (ids,
    counts, reasons), never a payload value. ``client_address`` defaults to the one bound
    to this task (:func:`bind_client_address`)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    where = client_address or _client_address.get()
    args = (actor, action, target_kind, str(target_id), outcome, detail, where)
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _append(conn, *args)
    return await _append(db, *args)


async def _append(
    conn: Any,
    actor: str,
    action: str,
    target_kind: str,
    target_id: str,
    outcome: str,
    detail: Mapping[str, DetailValue] | None,
    client_address: str | None,
) -> int:
    async with conn.transaction():  # a savepoint inside the caller's transaction
        # Held until commit: the next writer appends after this entry, never beside it.
        head = await conn.fetchrow("SELECT seq, hash FROM carebus_audit.head FOR UPDATE")
        entry = Entry(
            seq=int(head["seq"]) + 1,
            at=datetime.now(UTC),
            actor=_clip(actor) or "unknown",
            origin=_clip(_origin),
            action=action,
            target_kind=_clip(target_kind),
            target_id=_clip(target_id),
            outcome=_clip(outcome),
            detail=canonical(dict(detail or {})).decode(),
            prev_hash=str(head["hash"]),
            hash="",
            client_address=None if client_address is None else _clip(client_address),
        )
        digest = entry.expected_hash()
        await conn.execute(
            "INSERT INTO carebus_audit.entry (seq, at, actor, origin, action, target_kind, "
            "target_id, outcome, detail, prev_hash, hash, client_address) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            entry.seq, entry.at, entry.actor, entry.origin, entry.action, entry.target_kind,
            entry.target_id, entry.outcome, entry.detail, entry.prev_hash, digest,
            entry.client_address,
        )  # fmt: skip
        await conn.execute("UPDATE carebus_audit.head SET seq = $1, hash = $2", entry.seq, digest)
    return entry.seq


_COLUMNS = (
    "seq, at, actor, origin, action, target_kind, target_id, outcome, detail, prev_hash, hash, "
    "client_address"
)


def _entry(row: Mapping[str, Any]) -> Entry:
    return Entry(**{f.name: row[f.name] for f in fields(Entry)})


async def verify(conn: Any, page: int = 5000) -> Broken | None:
    """Walk the chain from its start; the first entry that is missing, edited or out of
    place, or None when every entry and the head agree."""
    prev_seq, prev_hash = 0, GENESIS
    while True:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM carebus_audit.entry WHERE seq > $1 ORDER BY seq LIMIT $2",
            prev_seq,
            page,
        )
        for row in rows:
            entry = _entry(row)
            if entry.seq != prev_seq + 1:
                return Broken(prev_seq + 1, f"entry {prev_seq + 1} is missing")
            if entry.prev_hash != prev_hash:
                return Broken(entry.seq, "its previous hash is not the previous entry's hash")
            if entry.hash != entry.expected_hash():
                return Broken(entry.seq, "its content does not match its hash")
            prev_seq, prev_hash = entry.seq, entry.hash
        if len(rows) < page:
            break
    head = await conn.fetchrow("SELECT seq, hash FROM carebus_audit.head")
    if head is None:
        return Broken(prev_seq + 1, "the chain's head is missing")
    head_seq = int(head["seq"])
    if head_seq > prev_seq:  # the last entries were removed
        return Broken(prev_seq + 1, f"the chain ends at entry {prev_seq}, its head at {head_seq}")
    if head_seq < prev_seq:  # entries were added behind the head's back
        return Broken(head_seq + 1, f"entries after the head (entry {head_seq}) were added")
    if str(head["hash"]) != prev_hash:
        return Broken(prev_seq, "the head's hash is not the last entry's hash")
    return None


async def entries(
    conn: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    limit: int = 100,
) -> list[Entry]:
    """Entries matching every filter given, newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM carebus_audit.entry "
        "WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2) "
        "AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4) "
        "AND ($5::text IS NULL OR target_kind = $5) AND ($6::text IS NULL OR target_id = $6) "
        "ORDER BY seq DESC LIMIT $7",
        since, until, actor, action, target_kind, target_id, limit,
    )  # fmt: skip
    return [_entry(row) for row in rows]


def detail_of(entry: Entry) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(entry.detail)
    return decoded


def lines(found: Sequence[Entry]) -> list[str]:
    """One line per entry, for `carebus audit list`."""
    return [
        f"{e.seq:>7} {e.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} {e.actor[:20]:20} "
        f"{e.action:17} {e.target_kind}:{e.target_id} -> {e.outcome}"
        + (f" {e.detail}" if e.detail != "{}" else "")
        + f" ({e.origin}"
        + (f" from {e.client_address}" if e.client_address else "")
        + ")"
        for e in found
    ]
