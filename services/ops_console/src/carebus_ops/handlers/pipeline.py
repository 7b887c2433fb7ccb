"""The pipeline's state: every durable's backlog from JetStream, every stream's size, and
each service's readiness (its own /health/ready)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

import msgspec
from nats.js import JetStreamContext

from carebus_ops.adapters.jetstream_state import read_state
from carebus_ops.adapters.metrics import ConsumerState, OpsMetrics, StreamState
from carebus_shared.jetstream.topology import TOPOLOGY


class ServiceReady(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    url: str
    ready: bool
    detail: str


class PipelineBody(msgspec.Struct, frozen=True, kw_only=True):
    consumers: list[ConsumerState]
    streams: list[StreamState]
    services: list[ServiceReady]


def _ready(name: str, url: str, timeout_s: float) -> ServiceReady:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=timeout_s) as response:
            return ServiceReady(service=name, url=url, ready=response.status == 200, detail="ok")
    except urllib.error.HTTPError as exc:
        try:
            checks = json.loads(exc.read()).get("checks", {})
            failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        except (ValueError, AttributeError):
            failing = ""
        return ServiceReady(
            service=name, url=url, ready=False, detail=failing or f"HTTP {exc.code}"
        )
    except (urllib.error.URLError, OSError):
        return ServiceReady(service=name, url=url, ready=False, detail="down")


class Pipeline:
    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        metrics: OpsMetrics,
        services: Mapping[str, str],
        ready_timeout_s: float,
    ) -> None:
        self._js = js
        self._metrics = metrics
        self._services = dict(services)
        self._timeout_s = ready_timeout_s

    async def poll(self) -> None:
        """Refresh the JetStream gauges (a background step)."""
        self._metrics.snapshots.jetstream = await read_state(self._js(), TOPOLOGY)

    async def view(self) -> PipelineBody:
        state, services = await asyncio.gather(
            read_state(self._js(), TOPOLOGY),
            asyncio.gather(
                *(
                    asyncio.to_thread(_ready, name, url, self._timeout_s)
                    for name, url in self._services.items()
                )
            ),
        )
        return PipelineBody(consumers=state.consumers, streams=state.streams, services=services)
