"""Replicas of an ordered stage share its partitions: a membership key each, a fair share.

An ordered stage is one durable per subject partition (docs/decisions/030), each with its own
lease (``lease.py``): whoever holds a partition's lease fetches from it, so one entity's
events are never handled by two replicas at once. The balancer decides how many leases this
replica may hold:

- every replica of the stage rewrites a membership key ``<stream>.<stage>.members.<holder>``
  in the ``stage_leases`` bucket every third of ``LEASE_TTL_S``; a dead one's expires, a
  stopping one writes an empty value at once;
- the fair share is ``ceil(partitions / live members)``; a replica takes a free partition's
  lease only while it holds fewer than its share;
- a replica holding more than its share hands the extra ones back (each after its batch in
  hand), but only once a larger membership has been seen on two reads in a row, so one late
  heartbeat makes nobody shed (no flapping); a smaller membership counts at once, so the
  partitions of a replica that left are taken without delay.

A single replica holds every partition: one batch in flight per partition, so the batches
of several partitions (and their publish confirmations) overlap in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError

from carebus_shared.jetstream.lease import Lease, holder_id
from carebus_shared.jetstream.topology import LEASE_TTL_S, STAGE_LEASES_BUCKET
from carebus_shared.tasks import cancel_and_wait

log = logging.getLogger("carebus.balancer")

_FAILURES = (NatsError, JetStreamError, TimeoutError, OSError)
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def fair_share(partitions: int, members: int) -> int:
    """How many partitions one of ``members`` live replicas may hold (all, when it is alone
    or has not looked yet)."""
    return math.ceil(partitions / max(members, 1))


@dataclass
class Balancer:
    stream: str
    stage: str
    partitions: int
    member: str = field(default_factory=holder_id)
    ttl_s: float = LEASE_TTL_S
    bucket: str = STAGE_LEASES_BUCKET
    # Live members on the last two reads (0: not read yet); this replica counts itself.
    _seen: tuple[int, int] = field(default=(0, 0), init=False)
    _leases: dict[int, Lease] = field(default_factory=dict, init=False)
    _shedding: int = field(default=0, init=False)  # leases being handed back now
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    # Consumers of this replica decide to take a lease one at a time, so they never
    # overshoot the share together.
    taking: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def _prefix(self) -> str:
        return f"$KV.{self.bucket}.{self.stream}.{self.stage}.members"

    @property
    def subject(self) -> str:
        return f"{self._prefix}.{_KEY_UNSAFE.sub('_', self.member)}"

    def register(self, partition: int, lease: Lease) -> None:
        self._leases[partition] = lease

    @property
    def held(self) -> list[int]:
        """The partitions whose lease this replica holds now."""
        return sorted(p for p, lease in self._leases.items() if lease.held)

    @property
    def members(self) -> int:
        return self._seen[-1]

    @property
    def share(self) -> int:
        return fair_share(self.partitions, self.members)

    def may_take(self) -> bool:
        """Whether this replica may take one more free partition now."""
        return self.members > 0 and len(self.held) < self.share

    def should_shed(self) -> bool:
        """True, once per partition too many, while this replica holds more than the share
        of a membership seen on two reads in a row; the caller hands its lease back and then
        says :meth:`shed`."""
        settled = min(self._seen)
        if settled == 0:
            return False
        if len(self.held) - self._shedding <= fair_share(self.partitions, settled):
            return False
        self._shedding += 1
        return True

    def shed(self) -> None:
        """A lease :meth:`should_shed` asked for is handed back."""
        self._shedding = max(0, self._shedding - 1)

    def start(self, js: Callable[[], JetStreamContext]) -> None:
        self._task = asyncio.create_task(self._heartbeat(js), name=f"members-{self.stage}")

    async def stop(self, js: JetStreamContext) -> None:
        """Leave the membership at once (the others' shares grow on their next read)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        with contextlib.suppress(*_FAILURES):
            await js.publish(self.subject, b"", timeout=self.ttl_s / 3)
        self._seen = (0, 0)

    async def beat(self, js: JetStreamContext) -> int:
        """Rewrite this replica's membership key, then count the live members."""
        await js.publish(self.subject, self.member.encode(), timeout=self.ttl_s / 3)
        live = await self._live_members(js)
        self._seen = (self._seen[-1] or live, live)
        return live

    async def _live_members(self, js: JetStreamContext) -> int:
        info = await js.stream_info(f"KV_{self.bucket}", subjects_filter=f"{self._prefix}.>")
        live = 0
        for subject in (info.state.subjects or {}) if info.state else {}:
            with contextlib.suppress(*_FAILURES):
                last = await js.get_last_msg(f"KV_{self.bucket}", subject)
                live += bool(last.data)  # a left member's key holds nothing until it expires
        return max(live, 1)  # this replica, even when its own write is not visible yet

    async def _heartbeat(self, js: Callable[[], JetStreamContext]) -> None:
        while True:  # cancelled by stop()
            try:
                before = self.members
                live = await self.beat(js())
                if live != before:
                    log.info(
                        "stage members: %d, share %d of %d partitions",
                        live, self.share, self.partitions, extra={"stage": self.stage},
                    )  # fmt: skip
            except Exception:  # NATS away or not connected yet: leases lapse by themselves
                log.warning("membership not renewed", exc_info=True, extra={"stage": self.stage})
            await asyncio.sleep(self.ttl_s / 3)
