"""`carebus status`: streams, each stage's backlog and who holds its partitions, every consumer
with its backlog, and each service's readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import nats
from nats.js import JetStreamContext

from carebus_shared.cli.services import discover
from carebus_shared.http.readiness import readiness
from carebus_shared.jetstream.connection import connect as connect_nats
from carebus_shared.jetstream.lease import Lease
from carebus_shared.jetstream.topology import TOPOLOGY, ConsumerSpec, Topology


@dataclass(frozen=True)
class Backlog:
    pending: int
    ack_pending: int
    redelivered: int


def _ready(base_url: str) -> str:
    ready, detail = readiness(base_url, 1.5)
    if ready:
        return "ready"
    return "down" if detail == "down" else f"not ready ({detail})"


async def _backlogs(
    js: JetStreamContext, consumers: Sequence[ConsumerSpec]
) -> dict[str, Backlog | None]:
    """Each consumer's backlog by ``stream/durable``; None when it is not provisioned."""
    found: dict[str, Backlog | None] = {}
    for c in consumers:
        try:
            ci = await js.consumer_info(c.stream, c.durable)
        except nats.js.errors.NotFoundError:
            found[f"{c.stream}/{c.durable}"] = None
            continue
        found[f"{c.stream}/{c.durable}"] = Backlog(
            ci.num_pending or 0, ci.num_ack_pending or 0, ci.num_redelivered or 0
        )
    return found


async def _holders(js: JetStreamContext, stage: Sequence[ConsumerSpec]) -> str:
    """'6 of 6 held by 2 replicas' for an ordered stage; '-' for one whose replicas share."""
    if not stage[0].ordered:
        return "-"
    holders = [await Lease(spec.stream, spec.durable).holder_now(js) for spec in stage]
    held = [h for h in holders if h is not None]
    replicas = len(set(held))
    return f"{len(held)} of {len(stage)} held by {replicas} replica{'s' * (replicas != 1)}"


def _stage_line(
    name: str, stage: Sequence[ConsumerSpec], backlogs: Mapping[str, Backlog | None], leases: str
) -> str:
    found = [backlogs[f"{c.stream}/{c.durable}"] for c in stage]
    known = [b for b in found if b is not None]
    if not known:
        return f"{name:33} {len(stage):>8}  missing (run `carebus provision`)"
    missing = "" if len(known) == len(found) else f"  ({len(found) - len(known)} missing)"
    pending = sum(b.pending for b in known)
    ack_pending = sum(b.ack_pending for b in known)
    return f"{name:33} {len(stage):>8} {pending:>8} {ack_pending:>12}  {leases}{missing}"


async def stage_lines(js: JetStreamContext, topology: Topology = TOPOLOGY) -> list[str]:
    """A line per stage (its partitions summed, its leases' holders), then one per consumer."""
    backlogs = await _backlogs(js, topology.consumers)
    lines = ["STAGE                             DURABLES  PENDING  ACK-PENDING  LEASES"]
    for name in topology.stages:
        stage = topology.stage(name)
        lines.append(_stage_line(name, stage, backlogs, await _holders(js, stage)))
    lines.append("")
    lines.append("CONSUMER                                  PENDING  ACK-PENDING  REDELIVERED")
    for name, backlog in backlogs.items():
        if backlog is None:
            lines.append(f"{name:41} missing (run `carebus provision`)")
        else:
            lines.append(
                f"{name:41} {backlog.pending:>7} {backlog.ack_pending:>12} "
                f"{backlog.redelivered:>12}"
            )
    return lines


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
        lines += await stage_lines(js)
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
