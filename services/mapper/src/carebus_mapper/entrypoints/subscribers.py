"""The mapping stage's consumers (bound to the provisioned MAPPER durables, one per
partition; thin by design) and the service's share of the exception capture."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_mapper.config import SERVICE, Settings
from carebus_mapper.handlers.stage import BatchMapper
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.consumer import Finish
from carebus_shared.jetstream.topology import MAPPER
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(runtime: ServiceRuntime, mapper: BatchMapper, settings: Settings) -> None:
    capture_exceptions(runtime)

    async def on_validated(msgs: Sequence[Msg]) -> Finish:
        return await runtime.prepare_stage_batch(
            SERVICE, msgs, mapper, mapper, settings.publish_timeout_s
        )

    runtime.consume_stage(
        MAPPER,
        on_validated,
        settings.batch_size,
        settings.max_wait_s,
        in_flight=settings.batches_in_flight,
    )
