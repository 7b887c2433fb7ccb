"""Turn JetStream's 'gave up on this message' advisories into exception records.

When a message exhausts max_deliver, or a consumer terminates it, JetStream emits an
advisory naming the stream and sequence. The ADVISORIES stream keeps those durably; this
handler fetches the original message and records it, so a person can fix and re-drive it.
A stage that rejected a message itself has already recorded it under the same dedupe key
(stream:sequence, of the original when the message is a replayed copy), with its specific
reason, so the advisory adds nothing in that case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.stage import BatchHandler, Forward, Outcome, RecordExceptions
from carebus_shared.jetstream.topology import stage_of_durable
from carebus_shared.replay.headers import origin_key

log = logging.getLogger(__name__)

MAX_DELIVER_TYPE = "io.nats.jetstream.advisory.v1.max_deliver"


class Advisory(msgspec.Struct, frozen=True):
    type: str
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0
    reason: str = ""


_decode_advisory = msgspec.json.Decoder(Advisory).decode


async def advisory_record(js: JetStreamContext, advisory: Advisory) -> ExceptionRecord:
    given_up = advisory.type == MAX_DELIVER_TYPE
    if given_up:
        reason = "max_deliveries_exhausted"
        message = f"{advisory.consumer} gave up after {advisory.deliveries} deliveries"
    else:
        reason = "terminated"
        message = f"{advisory.consumer} terminated the message {advisory.reason}".strip()
    subject, raw, headers = None, None, {}
    try:
        original = await js.get_msg(advisory.stream, advisory.stream_seq)
        subject, raw, headers = original.subject, original.data, dict(original.headers or {})
    except NotFoundError:
        message += " (the original has since left the stream)"
    return ExceptionRecord(
        dedupe_key=origin_key(advisory.stream, advisory.stream_seq, headers),
        stage=stage_of_durable(advisory.consumer),  # a partition's durable: its stage's name
        category="transport",
        reason=reason,
        message=message,
        source="jetstream",
        event_id=headers.get("Nats-Msg-Id"),
        stream=advisory.stream,
        stream_seq=advisory.stream_seq,
        subject=subject,
        raw=raw,
        headers=headers,
    )


def advisory_handler(js: Callable[[], JetStreamContext], record: RecordExceptions) -> BatchHandler:
    """A stage handler that records every advisory in the batch, then acks them all."""

    async def handle(msgs: Sequence[Msg]) -> list[Outcome]:
        records = []
        for msg in msgs:
            try:
                advisory = _decode_advisory(msg.data)
            except msgspec.DecodeError:
                log.warning("unreadable advisory on %s", msg.subject)
                continue
            records.append(await advisory_record(js(), advisory))
        await record(records)  # raising here naks the batch: advisories are never dropped
        return [Forward() for _ in msgs]

    return handle
