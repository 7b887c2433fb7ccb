"""Start-up allocations are frozen out of the garbage collector once a service is up."""

from __future__ import annotations

import gc

from carebus_shared.config import RuntimeSettings
from carebus_shared.runtime.service import ServiceRuntime


async def test_runtime_freezes_its_start_up_heap_once_started(
    nats_url: str, database_url: str
) -> None:
    gc.unfreeze()
    runtime = ServiceRuntime(
        "scheduling-adapter",
        RuntimeSettings(nats_url=nats_url, database_url=database_url, shutdown_grace_s=5.0),
    )
    assert gc.get_freeze_count() == 0
    await runtime.start()
    try:
        await runtime.wait_started(30)
        assert gc.get_freeze_count() > 0
    finally:
        await runtime.stop()
        gc.unfreeze()  # leave the test process's collector as it was
