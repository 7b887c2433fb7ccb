"""Composition root of the billing adapter: the one place that wires its parts together."""

from __future__ import annotations

from litestar import Litestar

from carebus_billing_adapter.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_shared.exceptions.subscriber import exception_capture_router
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
    return runtime.http_app()
