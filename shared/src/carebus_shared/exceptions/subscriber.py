"""The exception-capture subscriber every service runs (replicas share one durable)."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import Context
from faststream.nats import NatsRouter
from faststream.nats.message import NatsBatchMessage

from carebus_shared.exceptions.capture import advisory_handler
from carebus_shared.jetstream.subscribe import batch_pull_options
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime


def exception_capture_router(runtime: ServiceRuntime) -> NatsRouter:
    router = NatsRouter()
    handle = advisory_handler(lambda: runtime.js, runtime.record_exceptions)

    @router.subscriber(  # type: ignore[untyped-decorator]  # kwargs defeat its overloads
        **batch_pull_options(TOPOLOGY.consumer(EXCEPTION_CAPTURE), 50, 0.5)
    )
    async def on_advisories(
        _: Any, message: Annotated[NatsBatchMessage, Context("message")]
    ) -> None:
        await runtime.run_stage_batch(EXCEPTION_CAPTURE, message.raw_message, handle)

    return router


def capture_exceptions(runtime: ServiceRuntime) -> None:
    """Take this service's share of the advisories (every service competes on one durable)."""
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
