"""Subscribers: the adapter takes its share of JetStream advisories into the exception store."""

from __future__ import annotations

from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.runtime.service import ServiceRuntime


def subscribe(runtime: ServiceRuntime) -> None:
    capture_exceptions(runtime)
