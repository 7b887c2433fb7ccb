"""`carebus status`: streams, consumers with their backlog, and each service's readiness."""

from __future__ import annotations

import asyncio

import nats

from carebus_shared.cli.services import discover
from carebus_shared.http.readiness import readiness
from carebus_shared.jetstream.connection import connect as connect_nats
from carebus_shared.jetstream.topology import TOPOLOGY


def _ready(base_url: str) -> str:
    ready, detail = readiness(base_url, 1.5)
    if ready:
        return "ready"
    return "down" if detail == "down" else f"not ready ({detail})"


async def status_lines(nats_url: str) -> list[str]:
    lines = ["STREAM          MESSAGES        BYTES"]
    nc = await connect_nats(nats_url, connect_timeout=3, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for spec in TOPOLOGY.streams:
            try:
                info = await js.stream_info(spec.name)
                lines.append(f"{spec.name:15} {info.state.messages:>8} {info.state.bytes:>12}")
            except nats.js.errors.NotFoundError:
                lines.append(f"{spec.name:15} missing (run `carebus provision`)")
        lines.append("")
        lines.append("CONSUMER                                  PENDING  ACK-PENDING  REDELIVERED")
        for c in TOPOLOGY.consumers:
            name = f"{c.stream}/{c.durable}"
            try:
                ci = await js.consumer_info(c.stream, c.durable)
                lines.append(
                    f"{name:41} {ci.num_pending or 0:>7} {ci.num_ack_pending or 0:>12} "
                    f"{ci.num_redelivered or 0:>12}"
                )
            except nats.js.errors.NotFoundError:
                lines.append(f"{name:41} missing (run `carebus provision`)")
    finally:
        await nc.close()
    lines.append("")
    lines.append("SERVICE                 HEALTH")
    for service in discover():
        settings = service.settings()
        url = f"http://{settings.http_host}:{settings.http_port}"
        state = await asyncio.to_thread(_ready, url)
        lines.append(f"{service.name:23} {state}")
    return lines
