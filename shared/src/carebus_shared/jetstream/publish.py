"""Publishing with confirmation, and the message ids that make a stage's output idempotent.

A stage derives each output's ``Nats-Msg-Id`` from the input event id and the stage name,
and acks its input only after JetStream confirmed every output. A crash between the two
redelivers the input, the stage publishes the same ids again, and JetStream's duplicate
window drops them: nothing is doubled, nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from carebus_contracts import Event, encode, headers_for, subject_for
from carebus_shared.tracing import context as trace
from carebus_shared.tracing.context import with_trace

MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    payload: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


def outgoing_for(event: Event) -> Outgoing:
    """A contract event as it is published: its subject, encoding, id and headers, with the
    trace context of the input it came from (by its causation id) or of the input in hand."""
    headers = with_trace(headers_for(event), trace.for_event(event.causation_id))
    return Outgoing(subject_for(event), encode(event), event.event_id, headers)


def traced(message: Outgoing, ctx: trace.TraceContext | None) -> Outgoing:
    """``message`` carrying ``ctx`` (as it is when there is none)."""
    if ctx is None or message.headers.get(trace.TRACEPARENT) == ctx.traceparent:
        return message
    return Outgoing(
        message.subject, message.payload, message.msg_id, with_trace(message.headers, ctx)
    )


class PublishFailed(RuntimeError):
    """At least one publish was not confirmed; the inputs behind it must not be acked."""


def stage_msg_id(stage: str, input_event_id: str, index: int = 0) -> str:
    """Deterministic id for output ``index`` of ``stage`` handling ``input_event_id``."""
    digest = hashlib.blake2b(f"{stage}\x1f{input_event_id}\x1f{index}".encode(), digest_size=16)
    return digest.hexdigest()


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Answer(msgspec.Struct):
    """JetStream's answer to a publish: a PubAck, or an API error."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: _ApiError | None = None


_DECODE_ANSWER = msgspec.json.Decoder(_Answer).decode


class _Confirmations:
    """Pipelined publishes on one connection, each answered on ``<prefix><n>`` under a
    single wildcard subscription.

    nats-py's ``publish_async`` does the same with a task (``wait_for``) and a urandom call
    per message, at more CPU per confirmed publish than here, and a stage publishes once or
    twice per event (docs/decisions/006).
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox() + "."
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._subscribed = asyncio.Lock()
        self._sub: object | None = None

    async def publish(self, message: Outgoing) -> asyncio.Future[Msg]:
        if self._sub is None:
            async with self._subscribed:
                if self._sub is None:  # nats-py re-subscribes it after a reconnect
                    self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._answer)
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        headers = {**message.headers, MSG_ID: message.msg_id}
        await self._nc.publish(
            message.subject, message.payload, reply=self._prefix + token, headers=headers
        )
        return future

    def forget(self, futures: Sequence[asyncio.Future[Msg]]) -> None:
        """Drop what timed out, so a late answer finds nothing and nothing accumulates."""
        gone = set(futures)
        for token in [t for t, f in self._waiting.items() if f in gone]:
            del self._waiting[token]

    async def _answer(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if future is not None and not future.done():
            future.set_result(msg)


_BY_CONNECTION: weakref.WeakKeyDictionary[Client, _Confirmations] = weakref.WeakKeyDictionary()


def _confirmations(js: JetStreamContext) -> _Confirmations:
    nc: Client = js._nc
    found = _BY_CONNECTION.get(nc)
    if found is None:
        found = _BY_CONNECTION[nc] = _Confirmations(nc)
    return found


def _pub_ack(msg: Msg) -> api.PubAck:
    status = (msg.headers or {}).get("Status")
    if status:  # 503: no stream takes this subject
        raise PublishFailed(f"JetStream answered status {status} on {msg.subject}")
    try:
        answer = _DECODE_ANSWER(msg.data)
    except msgspec.DecodeError as exc:
        raise PublishFailed(f"unreadable publish acknowledgement: {msg.data[:200]!r}") from exc
    if answer.error is not None:
        error = answer.error
        raise PublishFailed(f"JetStream refused the publish: {error.err_code} {error.description}")
    return api.PubAck(
        stream=answer.stream, seq=answer.seq, domain=answer.domain, duplicate=answer.duplicate
    )


async def publish_confirmed(
    js: JetStreamContext, messages: Sequence[Outgoing], timeout_s: float = 10.0
) -> list[api.PubAck]:
    """Publish all ``messages`` pipelined and wait for every JetStream ack, or raise.

    Pipelining keeps many publishes in flight on one connection; awaiting each publish in
    turn would cap a stage's rate (docs/decisions/006).
    """
    if not messages:
        return []
    confirmations = _confirmations(js)
    futures = [await confirmations.publish(message) for message in messages]
    try:
        async with asyncio.timeout(timeout_s):
            answers = await asyncio.gather(*futures)
    except TimeoutError as exc:
        confirmations.forget(futures)
        for future in futures:
            future.cancel()
        raise PublishFailed(f"{len(messages)} publishes not confirmed in {timeout_s}s") from exc
    acks, failures = [], []
    for answer in answers:
        try:
            acks.append(_pub_ack(answer))
        except PublishFailed as exc:
            failures.append(exc)
    if failures:
        raise PublishFailed(f"{len(failures)} of {len(messages)} publishes failed: {failures[0]}")
    return acks


_SETTLE_SLICE = 256


@dataclass(slots=True)
class Tally:
    """What a :class:`ConfirmedStream` had confirmed: new messages and duplicates."""

    published: int = 0
    duplicates: int = 0


class ConfirmedStream:
    """Publishing a large input (a file) pipelined, with at most ``window`` publishes waiting
    for their confirmation: the sender keeps going while the oldest are confirmed, and memory
    stays bounded by the window, not by the file.

    ``publish`` sends and, past the window, waits for the oldest half of what is in flight;
    ``confirmed`` waits for the rest. Either raises PublishFailed (a refusal, a timeout), after
    which nothing more may be sent: the input behind the stream must not be acknowledged.
    Publishes keep their order on the connection (per-entity order holds).
    """

    def __init__(self, js: JetStreamContext, *, window: int = 2048, timeout_s: float = 10.0):
        if window < 2:
            raise ValueError("the window holds at least two publishes")
        self._confirmations = _confirmations(js)
        self._window = window
        self._timeout = timeout_s
        self._in_flight: list[asyncio.Future[Msg]] = []
        self._failed = False
        self.tally = Tally()

    async def publish(self, messages: Iterable[Outgoing]) -> None:
        if self._failed:
            raise PublishFailed("an earlier publish of this stream failed")
        for message in messages:
            if len(self._in_flight) >= self._window:
                await self._settle(self._window // 2)
            self._in_flight.append(await self._confirmations.publish(message))

    @property
    def in_flight(self) -> int:
        """Publishes sent and not yet confirmed."""
        return len(self._in_flight)

    async def confirmed(self) -> Tally:
        """Every publish so far confirmed (or PublishFailed)."""
        if self._failed:
            raise PublishFailed("an earlier publish of this stream failed")
        await self._settle(len(self._in_flight))
        return self.tally

    async def _settle(self, count: int) -> None:
        """Wait for the oldest ``count`` confirmations, a slice at a time: the timeout is on
        progress (a slice not confirmed in time), so a slow disk does not fail a big window."""
        while count > 0:
            step = min(count, _SETTLE_SLICE)
            count -= step
            oldest, self._in_flight = self._in_flight[:step], self._in_flight[step:]
            try:
                async with asyncio.timeout(self._timeout):
                    answers = await asyncio.gather(*oldest)
                for answer in answers:
                    if _pub_ack(answer).duplicate:
                        self.tally.duplicates += 1
                    else:
                        self.tally.published += 1
            except BaseException as exc:
                self._abandon([*oldest, *self._in_flight])
                if isinstance(exc, TimeoutError):
                    raise PublishFailed(
                        f"{len(oldest)} publishes not confirmed in {self._timeout}s"
                    ) from exc
                raise

    def _abandon(self, futures: list[asyncio.Future[Msg]]) -> None:
        self._failed = True
        self._in_flight = []
        self._confirmations.forget(futures)
        for future in futures:
            future.cancel()
