"""Retention of kept raw inputs (docs/decisions/028): `carebus purge`.

- A resolved exception record (re-driven or discarded) keeps its raw input, offending value
  and the corrected bodies sent for it ``resolved_days`` after it was resolved; then they
  are nulled (the record, its reason and its history stay).
- An open record older than ``open_days`` is closed (discarded by ``carebus-retention``,
  in its history) and its input nulled: nobody re-drove it in all that time.
- A 835 inbox's moved files (done/, rejected/) are deleted ``resolved_days`` after they
  were moved: the exception store keeps what a rejected file needs for re-drive.

Each run is one audit entry (action ``purge``) with its counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from carebus_shared import audit

RESOLVED_DAYS_ENV: Final = "CAREBUS_RAW_RETENTION_DAYS"
OPEN_DAYS_ENV: Final = "CAREBUS_OPEN_RETENTION_DAYS"
DEFAULT_RESOLVED_DAYS: Final = 30
DEFAULT_OPEN_DAYS: Final = 365
RETENTION_ACTOR: Final = "carebus-retention"
INBOX_FOLDERS: Final = ("done", "rejected")

_NULL_RESOLVED: Final = """
UPDATE carebus_exceptions.exception_record SET raw = NULL, offending_value = NULL
 WHERE status <> 'open' AND resolved_at < $1 AND (raw IS NOT NULL OR offending_value IS NOT NULL)
"""
_NULL_SENT: Final = """
UPDATE carebus_exceptions.exception_action a SET sent_body = NULL
  FROM carebus_exceptions.exception_record r
 WHERE a.record_id = r.id AND a.sent_body IS NOT NULL AND r.status <> 'open' AND r.resolved_at < $1
"""
_CLOSE_OPEN: Final = """
WITH closed AS (
    UPDATE carebus_exceptions.exception_record
       SET status = 'discarded', resolved_at = now(), resolved_by = $2, resolution_note = $3,
           raw = NULL, offending_value = NULL
     WHERE status = 'open' AND recorded_at < $1
 RETURNING id)
INSERT INTO carebus_exceptions.exception_action (record_id, actor, action, outcome, note)
SELECT id, $2, 'discard', 'discarded', $3 FROM closed
"""


@dataclass(frozen=True)
class Purged:
    resolved: int  # resolved records whose input was nulled
    sent_bodies: int  # corrected bodies nulled
    open_closed: int  # open records closed and nulled
    files: int  # inbox files deleted

    def line(self) -> str:
        return (
            f"purged: {self.resolved} resolved record(s), {self.sent_bodies} corrected "
            f"body(ies), {self.open_closed} open record(s) past retention closed, "
            f"{self.files} inbox file(s)"
        )


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _old_files(inbox: Path, cutoff: float) -> list[Path]:
    found = []
    for name in INBOX_FOLDERS:
        folder = inbox / name
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.is_file() and p.stat().st_mtime < cutoff]
    return found


async def purge(
    conn: Any,
    *,
    resolved_days: int = DEFAULT_RESOLVED_DAYS,
    open_days: int = DEFAULT_OPEN_DAYS,
    inboxes: tuple[Path, ...] = (),
    actor: str = RETENTION_ACTOR,
    client_address: str | None = None,
    now: datetime | None = None,
) -> Purged:
    """Apply the retention once, in one transaction with its audit entry."""
    if resolved_days < 1 or open_days < 1:
        raise ValueError("retention is at least one day")
    moment = now or datetime.now(UTC)
    resolved_before = moment - timedelta(days=resolved_days)
    note = f"raw input purged: open longer than the {open_days}-day retention"
    async with conn.transaction():
        sent = _count(await conn.execute(_NULL_SENT, resolved_before))
        resolved = _count(await conn.execute(_NULL_RESOLVED, resolved_before))
        closed = _count(
            await conn.execute(_CLOSE_OPEN, moment - timedelta(days=open_days), actor, note)
        )
        cutoff = (moment.timestamp() if now else time.time()) - resolved_days * 86400
        old = [p for inbox in inboxes for p in _old_files(inbox, cutoff)]
        for path in old:
            path.unlink(missing_ok=True)
        done = Purged(resolved, sent, closed, len(old))
        await audit.record(
            conn, actor=actor, action="purge", target_kind="kept_inputs", target_id="retention",
            outcome="purged", client_address=client_address,
            detail={
                "resolved_days": resolved_days, "open_days": open_days,
                "resolved": resolved, "sent_bodies": sent, "open_closed": closed,
                "files": len(old),
            },
        )  # fmt: skip
    return done
