"""The two validation subscribers: batch pull consumers on SCHEDULING and BILLING."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from faststream import Context
from faststream.nats import NatsRouter
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg

from carebus_masterdata_validator.handlers.validate import Validator
from carebus_shared.jetstream.stage import Outcome
from carebus_shared.jetstream.subscribe import batch_pull_options
from carebus_shared.jetstream.topology import TOPOLOGY, ConsumerSpec
from carebus_shared.runtime.service import ServiceRuntime


def _subscribe(
    router: NatsRouter,
    runtime: ServiceRuntime,
    validator: Validator,
    spec: ConsumerSpec,
    batch_size: int,
    max_wait_s: float,
) -> None:
    stage = spec.durable

    async def handle(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        return await validator.handle(stage, msgs)

    @router.subscriber(  # type: ignore[untyped-decorator]  # kwargs defeat its overloads
        **batch_pull_options(spec, batch_size, max_wait_s)
    )
    async def on_batch(_: Any, message: Annotated[NatsBatchMessage, Context("message")]) -> None:
        await runtime.run_stage_batch(stage, message.raw_message, handle)


def validation_router(
    runtime: ServiceRuntime,
    validator: Validator,
    consumers: Sequence[str],
    batch_size: int,
    max_wait_s: float,
) -> tuple[NatsRouter, list[ConsumerSpec]]:
    router = NatsRouter()
    specs = [TOPOLOGY.consumer(durable) for durable in consumers]
    for spec in specs:
        _subscribe(router, runtime, validator, spec, batch_size, max_wait_s)
    return router, specs
