"""The two validation consumers (batch pulls on SCHEDULING and BILLING, thin by design) and
the service's share of the exception capture."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_masterdata_validator.handlers.validate import Validator
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.consumer import Finish
from carebus_shared.jetstream.stage import Outcome
from carebus_shared.runtime.service import ServiceRuntime


def _consume(
    runtime: ServiceRuntime,
    validator: Validator,
    stage: str,
    batch_size: int,
    max_wait_s: float,
    in_flight: int,
) -> None:
    """``stage`` is the durable's name before partitions: exceptions and metrics name it."""

    async def handle(msgs: Sequence[Msg]) -> Sequence[Outcome]:
        return await validator.handle(stage, msgs)

    async def on_batch(msgs: Sequence[Msg]) -> Finish:
        return await runtime.prepare_stage_batch(stage, msgs, handle)

    runtime.consume_stage(stage, on_batch, batch_size, max_wait_s, in_flight)


def subscribe(
    runtime: ServiceRuntime,
    validator: Validator,
    consumers: Sequence[str],
    batch_size: int,
    max_wait_s: float,
    in_flight: int,
) -> None:
    capture_exceptions(runtime)
    for stage in consumers:
        _consume(runtime, validator, stage, batch_size, max_wait_s, in_flight)
