"""A minimal stage built on the shared runtime, run as a real process by the runtime tests.

It consumes ``echo.in.>`` from stream ECHO_IN and republishes each message to ``echo.out.*``
with the stage's deterministic message id, acking each input only after the publish ack —
the same path every carebus stage takes. ``ECHO_DELAY_S`` slows each batch so that a test can
catch messages in flight.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_shared.config import RuntimeSettings
from carebus_shared.exceptions.subscriber import exception_capture_router
from carebus_shared.jetstream.publish import Outgoing, stage_msg_id
from carebus_shared.jetstream.stage import Forward, Outcome, Reject, Retry
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY, ConsumerSpec, StreamSpec
from carebus_shared.logs import configure_logging
from carebus_shared.runtime.server import serve
from carebus_shared.runtime.service import ServiceRuntime
from carebus_shared.settings import load_settings

IN_STREAM = StreamSpec("ECHO_IN", ("echo.in.>",), "runtime test input", 3600, 60)
OUT_STREAM = StreamSpec("ECHO_OUT", ("echo.out.>",), "runtime test output", 3600, 60)
# Short redelivery steps so a test sees redeliveries within seconds, not minutes.
CONSUMER = ConsumerSpec(
    "ECHO_IN", "echo", ("echo.in.>",), "runtime test", backoff_s=(3.0, 3.0), max_deliver=3
)


class EchoSettings(RuntimeSettings, frozen=True, kw_only=True):
    delay_s: float = 0.0
    batch_size: int = 10


def echo_one(msg: Msg) -> Outcome:
    """Echo the message; ``Echo-Outcome: reject`` / ``retry`` headers steer the outcome."""
    headers = msg.headers or {}
    steer = headers.get("Echo-Outcome")
    if steer == "reject":
        return Reject(
            "contract",
            "echo_rejected",
            "asked to reject",
            site="SITE01",
            event_id=headers.get("Nats-Msg-Id"),
            path="$.body",
            offending_value="x",
        )
    if steer == "retry":
        return Retry(0.2)
    return Forward(
        [
            Outgoing(
                subject=msg.subject.replace("echo.in.", "echo.out.", 1),
                payload=msg.data,
                msg_id=stage_msg_id("echo", headers["Nats-Msg-Id"]),
            )
        ]
    )


async def echo(msgs: Sequence[Msg], delay_s: float) -> list[Outcome]:
    await asyncio.sleep(delay_s)
    return [echo_one(msg) for msg in msgs]


def main() -> None:
    settings = load_settings(EchoSettings, "ECHO_")
    configure_logging("echo", settings.log_level)
    # Named like a real stage so its exception events get a Stage in the contract.
    runtime = ServiceRuntime("mapper", settings)

    async def handle(msgs: Sequence[Msg]) -> list[Outcome]:
        return await echo(msgs, settings.delay_s)

    async def on_batch(msgs: Sequence[Msg]) -> None:
        await runtime.run_stage_batch("mapper-echo", msgs, handle)

    runtime.consume(CONSUMER, on_batch, settings.batch_size, 0.005)
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
    serve(runtime.http_app(), settings)


if __name__ == "__main__":
    os.environ.setdefault("CAREBUS_LOG_LEVEL", "INFO")
    sys.exit(main())
