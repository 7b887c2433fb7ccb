"""The two validation consumers (batch pulls on SCHEDULING and BILLING, thin by design) and
the service's share of the exception capture."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_masterdata_validator.handlers.validate import Validator
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.stage import Outcome
from carebus_shared.jetstream.topology import TOPOLOGY, ConsumerSpec
from carebus_shared.runtime.service import ServiceRuntime


def _consume(
    runtime: ServiceRuntime,
    validator: Validator,
    spec: ConsumerSpec,
    batch_size: int,
    max_wait_s: float,
) -> None:
    stage = spec.durable

    async def handle(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        return await validator.handle(stage, msgs)

    async def on_batch(msgs: Sequence[Msg]) -> None:
        await runtime.run_stage_batch(stage, msgs, handle)

    runtime.consume(spec, on_batch, batch_size, max_wait_s)


def subscribe(
    runtime: ServiceRuntime,
    validator: Validator,
    consumers: Sequence[str],
    batch_size: int,
    max_wait_s: float,
) -> None:
    capture_exceptions(runtime)
    for durable in consumers:
        _consume(runtime, validator, TOPOLOGY.consumer(durable), batch_size, max_wait_s)
