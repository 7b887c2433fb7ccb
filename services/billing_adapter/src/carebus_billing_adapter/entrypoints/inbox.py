"""The watched 835 inbox: each file is posted or rejected as a whole, then moved aside.

* posted (or recognised as posted before) → ``done/<name>``
* rejected → ``rejected/<name>`` plus ``rejected/<name>.reason`` listing every issue with its
  segment and element; the raw file is also kept in the exception store for re-drive.
* publishing failed (JetStream down) → the file stays where it is and is tried again on the
  next poll: nothing is lost and, thanks to deterministic ids, nothing is doubled.

Files younger than ``settle_s`` are left alone, so a file still being written is not read
half-way; names starting with "." are ignored (the usual write-then-rename convention).

A file moved aside is sealed with the data key (docs/decisions/028: PHI at rest; `carebus
keys open FILE` prints it) and deleted after the retention by `carebus purge`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from carebus_billing_adapter.handlers.remittance import (
    RemittanceHandler,
    RemittancePosted,
    RemittanceRefused,
)
from carebus_shared import crypto

log = logging.getLogger(__name__)

DONE = "done"
REJECTED = "rejected"


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists() or target.with_name(target.name + ".reason").exists():
        target = folder / f"{name}.{n}"
        n += 1
    return target


def _move_sealed(path: Path, raw: bytes, target: Path) -> None:
    """``raw`` (what ``path`` holds) written sealed to ``target``, then ``path`` removed."""
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(crypto.seal(raw) or b"")
    partial.rename(target)
    path.unlink()


def rejection_report(refused: RemittanceRefused) -> str:
    lines = [f"rejected: {len(refused.rejection.issues)} issue(s); nothing was posted"]
    for issue in refused.rejection.issues:
        lines.append(f"{issue.reason}: {issue.message}")
    return "\n".join(lines) + "\n"


class InboxWatcher:
    def __init__(
        self,
        folder: Path,
        handler: RemittanceHandler,
        registry: CollectorRegistry,
        *,
        settle_s: float,
    ) -> None:
        self.folder = folder
        self._handler = handler
        self._settle_s = settle_s
        self._files = Counter(
            "carebus_billing_inbox_files_total",
            "835 files taken from the inbox folder, by outcome",
            ["outcome"],
            registry=registry,
        )

    async def prepare(self) -> None:
        for sub in (DONE, REJECTED):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        log.info("watching the 835 inbox folder")

    def _ready_files(self) -> list[Path]:
        cutoff = time.time() - self._settle_s
        ready = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.stat().st_mtime <= cutoff:
                ready.append(path)
        return ready

    async def scan_once(self) -> int:
        """Handle every settled file once; returns how many were moved aside. A failing
        poll (disk, DB, JetStream) is logged by the runtime's background loop and retried."""
        moved = 0
        for path in self._ready_files():
            try:
                raw = path.read_bytes()
                outcome = await self._handler.handle(raw, origin="inbox")
            except Exception:
                self._files.labels("retry").inc()
                log.exception("inbox file could not be handled; it stays for the next poll")
                continue
            if isinstance(outcome, RemittancePosted):
                _move_sealed(path, raw, _free_name(self.folder / DONE, path.name))
                self._files.labels("duplicate" if outcome.duplicate else "posted").inc()
            else:
                target = _free_name(self.folder / REJECTED, path.name)
                target.with_name(target.name + ".reason").write_text(rejection_report(outcome))
                _move_sealed(path, raw, target)
                self._files.labels("rejected").inc()
            moved += 1
        return moved
