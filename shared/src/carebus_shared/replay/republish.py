"""Republishing a measured window as copies, in confirmed chunks (and the dry run's count).

Each chunk is published pipelined and confirmed (``publish_confirmed``) before the next is
read on; a chunk that was not confirmed is published again under the same message ids, so
what JetStream already stored is dropped as a duplicate. Before each chunk the target
consumer's backlog is checked: above ``max_backlog`` the replay waits for the stage, so live
traffic queues behind at most that many copies (``backlog_gate``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from carebus_shared.jetstream.publish import Outgoing, PublishFailed, publish_confirmed
from carebus_shared.jetstream.window import Span, read_span
from carebus_shared.replay.headers import copy_headers, is_copy, replay_msg_id

CHUNK = 500
PUBLISH_ATTEMPTS = 3


@dataclass
class Tally:
    read: int = 0
    republished: int = 0
    skipped: int = 0  # copies made by earlier replays: not replayed again
    duplicates: int = 0  # republishes JetStream dropped (a chunk sent again)
    last_seq: int | None = None  # everything up to here is done: resume after it


@dataclass
class Survey:
    """What a dry run found: the messages a replay would republish, by subject."""

    by_subject: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    # The first and last message read: (stream sequence, when it was stored).
    first: tuple[int, dt.datetime] | None = None
    last: tuple[int, dt.datetime] | None = None

    @property
    def total(self) -> int:
        return sum(self.by_subject.values())


class StageNotTaking(RuntimeError):
    """The target consumer's backlog stayed above the limit for the whole patience."""


Step = Callable[[], Awaitable[None]]
OnChunk = Callable[[Tally], Awaitable[None]]


async def _nothing(*_: object) -> None:
    return None


def copy_of(msg: Msg, replay_id: int, stream: str, seq: int) -> Outgoing:
    return Outgoing(
        msg.subject,
        msg.data,
        replay_msg_id(replay_id, stream, seq),
        copy_headers(msg.headers, replay_id, stream, seq),
    )


async def republish(
    js: JetStreamContext,
    span: Span,
    replay_id: int,
    tally: Tally,
    *,
    chunk_size: int = CHUNK,
    publish_timeout_s: float = 10.0,
    before_chunk: Step = _nothing,
    after_chunk: OnChunk = _nothing,
) -> Tally:
    """Republish every original message of ``span`` as a copy of replay ``replay_id``,
    counting into ``tally`` (kept up to date when this raises)."""
    chunk: list[Outgoing] = []
    seq = 0
    async for msg in read_span(js, span):
        seq = msg.metadata.sequence.stream
        tally.read += 1
        if is_copy(msg.headers):
            tally.skipped += 1
        else:
            chunk.append(copy_of(msg, replay_id, span.stream, seq))
        if tally.read % chunk_size == 0:  # a chunk of reads: copies, or copies skipped
            await _send(js, chunk, tally, publish_timeout_s, before_chunk)
            tally.last_seq = seq
            chunk = []
            await after_chunk(tally)
    await _send(js, chunk, tally, publish_timeout_s, before_chunk)
    if seq:
        tally.last_seq = seq
    await after_chunk(tally)
    return tally


async def _send(
    js: JetStreamContext, chunk: list[Outgoing], tally: Tally, timeout_s: float, gate: Step
) -> None:
    if not chunk:
        return
    await gate()
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            acks = await publish_confirmed(js, chunk, timeout_s)
            break
        except PublishFailed:
            if attempt == PUBLISH_ATTEMPTS:
                raise
            await asyncio.sleep(attempt)  # the same ids again: nothing is stored twice
    dropped = sum(1 for ack in acks if ack.duplicate)
    tally.republished += len(chunk) - dropped
    tally.duplicates += dropped


async def survey(
    js: JetStreamContext, span: Span, on_read: Callable[[int], None] = lambda _: None
) -> Survey:
    """Count what a replay of ``span`` would republish, by subject (headers only: the
    payloads stay on the server)."""
    found = Survey()
    read = 0
    async for msg in read_span(js, span, headers_only=True):
        read += 1
        meta = msg.metadata
        found.last = (meta.sequence.stream, meta.timestamp)
        found.first = found.first or found.last
        if is_copy(msg.headers):
            found.skipped += 1
        else:
            found.by_subject[msg.subject] += 1
        if read % CHUNK == 0:
            on_read(read)
    on_read(read)
    return found


def backlog_gate(
    js: JetStreamContext,
    stream: str,
    durables: Sequence[str],
    max_backlog: int,
    *,
    name: str = "",
    patience_s: float = 300.0,
    poll_s: float = 0.5,
) -> Step:
    """Before a chunk: wait while the target consumers (a stage's partitions) have more than
    ``max_backlog`` messages not yet delivered; ``StageNotTaking`` when that lasts
    ``patience_s``."""
    name = name or durables[0]

    async def wait_for_room() -> None:
        for _ in range(max(1, int(patience_s / poll_s))):
            infos = [await js.consumer_info(stream, durable) for durable in durables]
            if sum(info.num_pending or 0 for info in infos) <= max_backlog:
                return
            await asyncio.sleep(poll_s)
        raise StageNotTaking(
            f"{name} kept more than {max_backlog} messages waiting for {patience_s:.0f} s: "
            "is the stage running? (carebus status)"
        )

    return wait_for_room
