"""Delivering one feed's batch exactly once in effect, whatever the channel.

Per message: skip it if the delivery log says it was delivered (a redelivery after a crash
before the ack); else send it under its control id, record the attempt, and turn the
receiver's answer into the stage's outcome (ack, retry with backoff, dead letter). A crash
between the receiver's ACK and the log's row sends it again under the same control id,
which the receiver recognises. Once a channel's receiver is unreachable, the rest of the
batch for that channel is retried without being sent: a down receiver costs one timeout
per batch, not one per message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from nats.aio.msg import Msg

from carebus_outbound.adapters import delivery_log
from carebus_outbound.adapters.metrics import OutboundMetrics
from carebus_outbound.domain import delivery
from carebus_outbound.domain.delivery import (
    Accepted,
    Answer,
    Refused,
    Retrying,
    Unreachable,
    control_id,
)
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry


@dataclass(frozen=True, slots=True)
class Owed:
    """A message a feed owes one receiver, built from one event."""

    event_id: str
    site: str
    channel: str
    send: Callable[[str], Awaitable[Answer]]  # given the control id
    receiver: str = ""  # which subscriber, when a feed has several

    @property
    def key(self) -> tuple[str, str]:
        return self.event_id, self.receiver


# What one input message becomes: what it owes each receiver, or why it never can.
Build = Callable[[Msg], Sequence[Owed] | Reject]


def _status(answer: Answer) -> str:
    if isinstance(answer, Accepted):
        return "delivered"
    return "refused" if isinstance(answer, Refused) else "pending"


def _code(answer: Answer) -> str:
    return answer.why if isinstance(answer, Unreachable) else answer.code


def _combined(outcomes: Sequence[Outcome]) -> Outcome:
    """One input's outcome from its receivers': retried while any is, then refused if any
    was (those delivered are skipped on a re-drive: the log has them), else forwarded."""
    retries = [o for o in outcomes if isinstance(o, Retry)]
    if retries:
        return Retry(max(r.delay_s for r in retries))
    rejects = [o for o in outcomes if isinstance(o, Reject)]
    return rejects[0] if rejects else Forward()


class Feed:
    def __init__(
        self,
        name: str,
        build: Build,
        pool: Callable[[], asyncpg.Pool],
        metrics: OutboundMetrics,
        retrying: Retrying,
    ) -> None:
        self.name = name
        self._build = build
        self._pool = pool
        self._metrics = metrics
        self._retrying = retrying

    async def handle(self, msgs: Sequence[Msg]) -> list[Outcome]:
        built = [self._build(msg) for msg in msgs]
        keys = [o.key for b in built if not isinstance(b, Reject) for o in b]
        async with self._pool().acquire() as conn:
            done = await delivery_log.delivered(conn, self.name, keys) if keys else set()
        down: set[tuple[str, str]] = set()  # (receiver, channel) found unreachable
        outcomes: list[Outcome] = []
        for msg, item in zip(msgs, built, strict=True):
            if isinstance(item, Reject):
                outcomes.append(item)
                continue
            delivered = msg.metadata.num_delivered or 1
            each: list[Outcome] = []
            for owed in item:
                if owed.key in done:
                    self._metrics.messages.labels(self.name, owed.channel, "duplicate").inc()
                    each.append(Forward())
                elif (owed.receiver, owed.channel) in down:
                    self._metrics.messages.labels(self.name, owed.channel, "retried").inc()
                    each.append(Retry(self._retrying.delay_s(delivered, None)))
                else:
                    outcome = await self._deliver(msg, owed)
                    if isinstance(outcome, Retry):
                        down.add((owed.receiver, owed.channel))
                    each.append(outcome)
            outcomes.append(_combined(each))
        return outcomes

    async def _deliver(self, msg: Msg, item: Owed) -> Outcome:
        key = control_id(self.name, item.event_id, item.receiver)
        started = time.perf_counter()
        answer = await item.send(key)
        self._metrics.send_seconds.labels(self.name, item.channel).observe(
            time.perf_counter() - started
        )
        attempt = delivery_log.Attempt(
            self.name, item.event_id, item.receiver, key, item.channel, item.site,
            _status(answer), _code(answer),
        )  # fmt: skip
        async with self._pool().acquire() as conn:
            await delivery_log.record(conn, attempt)
        outcome = delivery.outcome(
            answer,
            msg.metadata.num_delivered or 1,
            self._retrying,
            site=item.site,
            event_id=item.event_id,
            feed=self.name,
        )
        self._count(item.channel, answer, outcome)
        return outcome

    def _count(self, channel: str, answer: Answer, outcome: Outcome) -> None:
        m = self._metrics
        if isinstance(answer, Unreachable):
            m.unreachable.labels(self.name, channel, answer.why).inc()
        if isinstance(outcome, Forward):
            m.messages.labels(self.name, channel, "delivered").inc()
        elif isinstance(outcome, Retry):
            m.messages.labels(self.name, channel, "retried").inc()
        else:
            refused = isinstance(answer, Refused)
            m.messages.labels(self.name, channel, "refused" if refused else "exhausted").inc()
