"""One replica at a time on an ordered durable: a lease in the ``stage_leases`` bucket.

Replicas of an ordered stage (validator, mapper) share one durable; JetStream hands each
pull whatever is next, so two replicas would handle one entity's events at once and put
them out of order (docs/decisions/027 measured it: order inversions and lost bookings with
three replicas). The replica holding the lease of a durable fetches from it; the others
wait, ready to take over. The lease is a key (``<stream>.<durable>``) in a KV bucket whose
entries expire after ``LEASE_TTL_S``: its holder rewrites it every third of that; a replica
that dies stops rewriting and the entry expires; one that stops releases it (an empty
value) at once.

Every write names the revision it expects (``Nats-Expected-Last-Subject-Sequence``), so two
replicas can never both take a free lease or renew a lost one. A holder whose renewals fail
(NATS away) counts its lease as lost once the time it was granted for has passed, so the
stage stops fetching no later than the entry expires for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError

from carebus_shared.jetstream.topology import LEASE_TTL_S, STAGE_LEASES_BUCKET
from carebus_shared.tasks import cancel_and_wait

log = logging.getLogger("carebus.lease")

_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
_FAILURES = (NatsError, JetStreamError, TimeoutError, OSError)


def holder_id() -> str:
    """This process's name in a lease (host and pid, for an operator; a suffix for unique)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Lease:
    stream: str
    durable: str
    holder: str = field(default_factory=holder_id)
    ttl_s: float = LEASE_TTL_S
    bucket: str = STAGE_LEASES_BUCKET
    _revision: int = field(default=0, init=False)
    # Monotonic time until which the lease is surely ours: when the last write was sent,
    # plus the time to live (the server counts from when it stored it, later).
    _until: float = field(default=0.0, init=False)
    _renewing: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def subject(self) -> str:
        return f"$KV.{self.bucket}.{self.stream}.{self.durable}"

    @property
    def held(self) -> bool:
        return self._revision > 0 and time.monotonic() < self._until

    async def holder_now(self, js: JetStreamContext) -> str | None:
        """Which replica holds this lease as the bucket says now, or None (free, released or
        expired): for status reports, not for deciding to fetch (that is :attr:`held`)."""
        try:
            last = await js.get_last_msg(f"KV_{self.bucket}", self.subject)
        except NotFoundError:
            return None
        return last.data.decode() if last.data else None

    async def acquire(self, js: JetStreamContext) -> bool:
        """Take the lease when it is free (never written, expired or released); then keep it
        renewed in the background. True when this replica holds it."""
        if self.held:
            return True
        self._revision = 0
        try:
            current = await js.get_last_msg(f"KV_{self.bucket}", self.subject)
        except NotFoundError:
            expected = 0
        else:
            if current.data and current.data.decode() != self.holder:
                return False  # another replica's, until it expires or is released
            expected = current.seq or 0
        if not await self._write(js, self.holder.encode(), expected):
            return False
        log.info("lease taken", extra={"durable": self.durable})
        self._renewing = asyncio.create_task(self._renew(js), name=f"lease-{self.durable}")
        return True

    async def release(self, js: JetStreamContext) -> None:
        """Hand the lease over at once (a standby takes it on its next try)."""
        if self._renewing is not None:
            await cancel_and_wait(self._renewing)
            self._renewing = None
        if self._revision:
            with contextlib.suppress(*_FAILURES):
                await self._write(js, b"", self._revision)
        self._revision = 0
        self._until = 0.0

    async def _renew(self, js: JetStreamContext) -> None:
        while self._revision:  # ends when the lease is lost; cancelled on release
            await asyncio.sleep(self.ttl_s / 3)
            try:
                if not await self._write(js, self.holder.encode(), self._revision):
                    log.warning("lease lost to another replica", extra={"durable": self.durable})
                    self._revision = 0
            except _FAILURES:  # NATS away: still ours until _until, then counted lost
                log.warning("lease not renewed", exc_info=True, extra={"durable": self.durable})
                if not self.held:
                    self._revision = 0

    async def _write(self, js: JetStreamContext, value: bytes, expected: int) -> bool:
        """Write ``value`` if the key is still at revision ``expected``; False if it moved."""
        sent = time.monotonic()
        try:
            ack = await js.publish(
                self.subject, value, timeout=self.ttl_s / 3, headers={_EXPECTED: str(expected)}
            )
        except JetStreamError as exc:
            if getattr(exc, "err_code", None) == 10071:  # wrong last sequence: someone else
                return False
            raise
        if value:
            self._revision, self._until = ack.seq, sent + self.ttl_s
        return True
