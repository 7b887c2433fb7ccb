"""The mapping stage's consumers (bound to the provisioned MAPPER durables, one per
partition; thin by design) and the service's share of the exception capture."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_mapper.config import SERVICE, Settings
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.stage import BatchHandler
from carebus_shared.jetstream.topology import MAPPER
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(runtime: ServiceRuntime, handle: BatchHandler, settings: Settings) -> None:
    capture_exceptions(runtime)

    async def on_validated(msgs: Sequence[Msg]) -> None:
        await runtime.run_stage_batch(SERVICE, msgs, handle)

    runtime.consume_stage(MAPPER, on_validated, settings.batch_size, settings.max_wait_s)
