"""Pull requests on a durable consumer, answered on an inbox subscription of our own.

nats-py's ``PullSubscription.fetch`` waits for each message with a task of its own
(``next_msg``: a ``uuid4``, a task, a ``wait_for``), CPU that every stage would pay for every
event (docs/decisions/005). The protocol is JetStream's own: a request to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` names a reply subject, the server delivers
up to ``batch`` messages there and ends the request with a status (404 no messages, 408
expired, 409 e.g. max ack pending) unless the batch was filled.

Each request gets its own reply subject, so a status (sent to that subject) ends only its
own request; a message delivered late for an earlier one (the client gave up on it) is kept
for the next batch rather than left to its ack deadline.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

_HEARTBEAT = "100"
_NOTHING_NOW = ("404", "408")  # no messages; the request expired
# A no-wait request is answered at once; a lingering one when it expires. Past this margin
# the link is in trouble, and the caller gets what has arrived (perhaps nothing).
ANSWER_MARGIN_S = 5.0


class _Request(msgspec.Struct):
    batch: int
    no_wait: bool = False
    expires: int | None = None  # nanoseconds


_ENCODE = msgspec.json.Encoder().encode


@dataclass
class _Open:
    token: str
    wanted: int
    done: asyncio.Future[None]
    delivered: int = 0


@dataclass
class Puller:
    nc: Client
    stream: str
    durable: str
    _inbox: str = ""
    _tokens: itertools.count[int] = field(default_factory=itertools.count)
    _received: list[Msg] = field(default_factory=list)
    _open: _Open | None = None
    _sub: Subscription | None = None
    # How the last pull was ended by the server when not by "nothing now" (e.g. 409
    # max ack pending reached, consumer deleted): the caller backs off rather than spin.
    refusal: str | None = None

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox() + "."
        self._sub = await self.nc.subscribe(self._inbox + "*", cb=self._deliver)

    async def stop(self) -> None:
        """Unsubscribe; what arrived for no pull yet is handed back for redelivery now,
        not at its ack deadline."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        unhandled, self._received = self._received, []
        for msg in unhandled:
            await msg.nak()

    async def pull(self, batch: int, wait_s: float | None) -> list[Msg]:
        """Up to ``batch`` messages: those waiting now (``wait_s`` None), or those arriving
        within ``wait_s``, returned as soon as the batch is full."""
        token = str(next(self._tokens))
        request = _Request(batch, no_wait=wait_s is None)
        if wait_s is not None:
            request.expires = int(wait_s * 1e9)
        loop = asyncio.get_running_loop()
        self._open = _Open(token, batch, loop.create_future())
        self.refusal = None
        try:
            await self.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}",
                _ENCODE(request),
                reply=self._inbox + token,
            )
            try:
                async with asyncio.timeout((wait_s or 0.0) + ANSWER_MARGIN_S):
                    await self._open.done
            except TimeoutError:
                pass  # no answer: return what came; late deliveries join the next pull
        finally:
            self._open = None
        received, self._received = self._received, []
        return received

    async def _deliver(self, msg: Msg) -> None:
        open_ = self._open
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None:
            # A message keeps its own subject, so it cannot say which request it answers:
            # counted towards the open one (a late one only ends that pull a little early).
            self._received.append(msg)
            if open_ is not None:
                open_.delivered += 1
                if open_.delivered >= open_.wanted and not open_.done.done():
                    open_.done.set_result(None)
        elif (
            status != _HEARTBEAT
            and open_ is not None
            and msg.subject[len(self._inbox) :] == open_.token  # not an earlier request's end
            and not open_.done.done()
        ):
            if status not in _NOTHING_NOW:
                self.refusal = f"{status} {headers.get('Description', '')}".strip()
            open_.done.set_result(None)  # 404, 408, 409: this request is over
