"""The mapping stage's subscriber: bound to the provisioned MAPPER durable, thin by design."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import Context
from faststream.nats import NatsRouter
from faststream.nats.message import NatsBatchMessage

from carebus_mapper.config import SERVICE, Settings
from carebus_shared.jetstream.stage import BatchHandler
from carebus_shared.jetstream.subscribe import batch_pull_options
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime


def mapper_router(runtime: ServiceRuntime, handle: BatchHandler, settings: Settings) -> NatsRouter:
    router = NatsRouter()
    options = batch_pull_options(
        TOPOLOGY.consumer(MAPPER), settings.batch_size, settings.max_wait_s
    )

    @router.subscriber(**options)  # type: ignore[untyped-decorator]  # kwargs defeat overloads
    async def on_validated(
        _: Any, message: Annotated[NatsBatchMessage, Context("message")]
    ) -> None:
        await runtime.run_stage_batch(SERVICE, message.raw_message, handle)

    return router
