"""A real carebus service with a crash point or an unsafe setting injected (tests only).

    CAREBUS_CHAOS_POINT=before_ack CAREBUS_CHAOS_AT=4 \\
        python -m tests.chaos.service erp-poster serve

Run from the repository root (or with it on ``PYTHONPATH``). It installs its hooks, then runs
the service's own script (``carebus_<service>.entrypoints.cli``): same settings, same code,
wrapped at a few public seams. Nothing here exists in the services' packages, so no setting a
user can reach turns a crash or an unsafe behaviour on.

Crash points (``CAREBUS_CHAOS_POINT``; the ``CAREBUS_CHAOS_AT``-th time it is reached, the
process SIGKILLs itself, or SIGSTOPs itself with ``CAREBUS_CHAOS_ACTION=stop``):

* ``after_fetch``: a stage holds a fetched batch, nothing handled (wraps the runtime's
  ``prepare_batch``; the exception capture's batches do not count);
* ``before_ack``: a stage committed and its outputs are confirmed, its inputs not acked yet
  (the first ``ack`` of a batch);
* ``after_erp_call``: the poster's ERP accepted journals, the poster has not recorded them
  (after ``RestApiConnector.post``);
* ``before_store`` / ``after_store``: an adapter received an input and has not published it /
  JetStream confirmed it and the sender has no answer yet (around ``Intake.publish``).

Unsafe settings (``CAREBUS_CHAOS_UNSAFE``, comma-separated), each a bug the suite must catch:

* ``ack_on_fetch``: a stage acks what it fetched before handling it (ack before commit);
* ``poster_inbox_off``: the poster's inbox and journal states are not consulted, and each
  delivery posts under its own idempotency key;
* ``answer_before_stored``: an adapter answers before JetStream confirmed (publishes in the
  background, drops the events while NATS is away);
* ``unstable_event_ids``: an adapter's event ids are not derived from the source;
* ``drop_on_dependency_error``: a stage acks a batch whose handler lost its database or NATS;
* ``skip_failed_batch``: a stage acks a batch its handler failed on (no poison isolation);
* ``drop_exhausted``: the poster acks a journal whose deliveries ran out instead of keeping it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from msgspec.structs import replace
from nats.aio.msg import Msg
from nats.js import api

from carebus_shared import intake
from carebus_shared.cli.services import discover
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.jetstream.publish import Tally
from carebus_shared.jetstream.stage import BatchHandler, Forward, Outcome, Reject
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE
from carebus_shared.runtime import service as runtime_service

MODULE = "tests.chaos.service"
POINT_ENV, AT_ENV, ACTION_ENV = "CAREBUS_CHAOS_POINT", "CAREBUS_CHAOS_AT", "CAREBUS_CHAOS_ACTION"
UNSAFE_ENV = "CAREBUS_CHAOS_UNSAFE"

STAGE_POINTS = ("after_fetch", "before_ack")
ADAPTER_POINTS = ("before_store", "after_store")
POINTS = (*STAGE_POINTS, "after_erp_call", *ADAPTER_POINTS)
UNSAFE = (
    "ack_on_fetch", "poster_inbox_off", "answer_before_stored", "unstable_event_ids",
    "drop_on_dependency_error", "skip_failed_batch", "drop_exhausted",
)  # fmt: skip

log = logging.getLogger("carebus.chaos")


class CrashPoint:
    """Counts the times ``point`` is reached; at the ``at``-th, the process dies (or stops)."""

    def __init__(self, point: str, at: int, action: str) -> None:
        self.point, self.at, self.action = point, at, action
        self.reached = 0

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        self.reached += 1
        if self.reached != self.at:
            return
        sig = signal.SIGSTOP if self.action == "stop" else signal.SIGKILL
        log.warning("chaos: %s reached (%d): %s", point, self.reached, sig.name)
        os.kill(os.getpid(), sig)


class _AckTrap:
    """A fetched message whose first ack in its batch reaches ``before_ack`` first."""

    def __init__(self, msg: Msg, batch: list[bool], crash: CrashPoint) -> None:
        self._msg, self._batch, self._crash = msg, batch, crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self._msg, name)

    async def ack(self) -> None:
        if not self._batch[0]:
            self._batch[0] = True
            self._crash.reach("before_ack")
        await self._msg.ack()


def _guarded(handle: BatchHandler, unsafe: set[str]) -> BatchHandler:
    """The stage's handler with the unsafe error handling asked for."""

    async def guarded(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        try:
            return await handle(msgs)
        except DEPENDENCY_ERRORS:
            if "drop_on_dependency_error" in unsafe:
                log.warning("chaos (unsafe): dependency error, batch of %d acked", len(msgs))
                return [Forward() for _ in msgs]
            raise
        except Exception:
            if "skip_failed_batch" in unsafe:
                log.warning("chaos (unsafe): handler failed, batch of %d acked", len(msgs))
                return [Forward() for _ in msgs]
            raise

    return guarded


def patch_stages(crash: CrashPoint, unsafe: set[str]) -> None:
    original = runtime_service.prepare_batch  # every stage's batch starts here

    async def prepare_batch(stage: str, js: Any, msgs: Sequence[Msg], handle: BatchHandler,
                        *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        if stage == EXCEPTION_CAPTURE:
            return await original(stage, js, msgs, handle, *args, **kwargs)
        if "ack_on_fetch" in unsafe and msgs:
            for msg in msgs:
                await msg.ack()
            await msgs[0]._client.flush()  # on the server before anything else happens
        crash.reach("after_fetch")
        batch = [False]
        trapped: Sequence[Any] = [_AckTrap(m, batch, crash) for m in msgs]
        return await original(stage, js, trapped, _guarded(handle, unsafe), *args, **kwargs)

    runtime_service.prepare_batch = prepare_batch


def patch_intake(crash: CrashPoint, unsafe: set[str]) -> None:
    original = intake.Intake.publish
    background: set[asyncio.Task[Any]] = set()

    async def stored(self: intake.Intake, source: str, events: Sequence[Any], inputs: int) -> Any:
        crash.reach("before_store")
        acks = await original(self, source, events, inputs=inputs)
        crash.reach("after_store")
        return acks

    async def answered_first(self: intake.Intake, source: str, events: Sequence[Any],
                             inputs: int) -> None:  # fmt: skip
        await asyncio.sleep(0.3)  # the sender has its answer by now
        try:
            await stored(self, source, events, inputs)
        except Exception:
            log.warning("chaos (unsafe): %d answered events were never stored", len(events))

    async def publish(self: intake.Intake, source: str, events: Sequence[Any], *,
                      inputs: int = 1) -> list[api.PubAck]:  # fmt: skip
        if "unstable_event_ids" in unsafe:
            events = [replace(e, event_id=f"{e.event_id}~{uuid.uuid4().hex[:8]}") for e in events]
        if "answer_before_stored" not in unsafe:
            return list(await stored(self, source, events, inputs))
        connection = self._runtime.broker._connection
        if connection is not None and connection.is_connected:
            task = asyncio.create_task(answered_first(self, source, events, inputs))
            background.add(task)
            task.add_done_callback(background.discard)
        return [api.PubAck(stream="", seq=0) for _ in events]

    intake.Intake.publish = publish  # type: ignore[method-assign]
    patch_intake_stream(crash, unsafe)


def patch_intake_stream(crash: CrashPoint, unsafe: set[str]) -> None:
    """The same crash points and unsafe settings for a file's stream of publishes (835, CSV):
    before its first publish, and after every one was confirmed."""
    stream = intake._IntakeStream
    original_publish, original_confirmed = stream.publish, stream.confirmed

    async def publish(self: intake._IntakeStream, events: Iterable[Any], *,
                      inputs: int = 0) -> None:  # fmt: skip
        events = list(events)
        if "unstable_event_ids" in unsafe:
            events = [replace(e, event_id=f"{e.event_id}~{uuid.uuid4().hex[:8]}") for e in events]
        if events:
            crash.reach("before_store")
        await original_publish(self, events, inputs=inputs)

    async def confirmed(self: intake._IntakeStream) -> Tally:
        if "answer_before_stored" in unsafe:
            return Tally()  # the sender is answered while publishes still wait for JetStream
        tally = await original_confirmed(self)
        crash.reach("after_store")
        return tally

    stream.publish = publish  # type: ignore[method-assign]
    stream.confirmed = confirmed  # type: ignore[method-assign]


def patch_poster(crash: CrashPoint, unsafe: set[str]) -> None:
    from carebus_erp_poster.adapters import repository
    from carebus_erp_poster.adapters.connectors import rest_api
    from carebus_erp_poster.domain.results import Accepted, Booked
    from carebus_erp_poster.handlers import post_journals

    post = rest_api.RestApiConnector.post

    async def post_then_crash(self: Any, conn: Any, postings: Sequence[Any]) -> Any:
        results = await post(self, conn, postings)
        if any(isinstance(r, Accepted | Booked) for r in results):
            crash.reach("after_erp_call")
        return results

    rest_api.RestApiConnector.post = post_then_crash  # type: ignore[method-assign]

    if "poster_inbox_off" in unsafe:
        parse = post_journals.parse

        async def lookup(*_: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            return {}, {}

        def parse_per_delivery(msg: Msg) -> Any:
            parsed = parse(msg)
            if isinstance(parsed, Reject):
                return parsed
            return replace(parsed, attempt=max(0, (msg.metadata.num_delivered or 1) - 1))

        repository.lookup = lookup  # type: ignore[assignment]
        post_journals.parse = parse_per_delivery

    if "drop_exhausted" in unsafe:
        unavailable = post_journals.PostJournals._unavailable

        def drop(self: Any, msg: Msg, posting: Any, result: Any) -> Outcome:
            outcome = unavailable(self, msg, posting, result)
            if isinstance(outcome, Reject) and outcome.reason == "deliveries_exhausted":
                log.warning("chaos (unsafe): exhausted journal acked, not kept")
                return Forward()
            return outcome

        post_journals.PostJournals._unavailable = drop  # type: ignore[method-assign]


def install(service: str, environ: dict[str, str]) -> Callable[[list[str]], int]:
    """Install the hooks ``environ`` asks for; returns the service's ``main``."""
    point = environ.get(POINT_ENV, "")
    if point and point not in POINTS:
        raise SystemExit(f"{MODULE}: {POINT_ENV} must be one of {', '.join(POINTS)}")
    unsafe = {u for u in environ.get(UNSAFE_ENV, "").split(",") if u}
    if unsafe - set(UNSAFE):
        raise SystemExit(f"{MODULE}: {UNSAFE_ENV} takes {', '.join(UNSAFE)}")
    crash = CrashPoint(point, int(environ.get(AT_ENV) or 1), environ.get(ACTION_ENV, "kill"))
    patch_stages(crash, unsafe)
    patch_intake(crash, unsafe)
    if service == "erp-poster":
        patch_poster(crash, unsafe)
    package = next(s.package for s in discover() if s.name == service)
    cli = importlib.import_module(f"{package}.entrypoints.cli")
    main: Callable[[list[str]], int] = cli.main
    return main


def main(argv: Sequence[str]) -> int:
    if not argv:
        raise SystemExit(f"usage: python -m {MODULE} <service> [serve|settings|...]")
    return install(argv[0], dict(os.environ))(list(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
