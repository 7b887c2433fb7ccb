"""Baseline: events through four raw JetStream hops with nats-py, each hop its own process.

Each hop pulls a batch from its input stream, republishes every message to the next stream
(pipelined publishes, deterministic ids), waits for the publish acks, then acks its inputs —
the same discipline as a carebus stage, with no decoding, no business logic and no
framework. A sink reads the last stream and records end-to-end latency from the timestamp
the producer put in each payload. The pipeline benchmark reports its ratio to this.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import struct
import time
from dataclasses import dataclass

import nats
import uvloop
from nats.js import JetStreamContext, api

HOPS = 4
_STAMP = struct.Struct("<q")  # producer's time.time_ns() at the head of each payload


@dataclass(frozen=True)
class RunFigures:
    events: int
    offered_per_s: float | None
    events_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s_per_1000: float


def _stream(i: int, tag: str) -> tuple[str, str]:
    return f"RAW{tag}_{i}", f"raw{tag}.{i}"


async def _setup(url: str, tag: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(HOPS + 1):
        name, subject = _stream(i, tag)
        await js.add_stream(
            name=name,
            subjects=[f"{subject}.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120,
        )
        await js.add_consumer(
            name, api.ConsumerConfig(durable_name="hop", ack_wait=60, max_ack_pending=20_000)
        )
    await nc.close()


async def _hop(url: str, tag: str, i: int, total: int) -> float:
    """Relay ``total`` messages; returns the CPU seconds spent from the first pull on."""
    nc = await nats.connect(url)
    js: JetStreamContext = nc.jetstream()
    src, _ = _stream(i, tag)
    _, dst = _stream(i + 1, tag)
    sub = await js.pull_subscribe_bind("hop", stream=src)
    started = time.process_time()  # start-up (imports, connect, bind) is not the hop's cost
    done = 0
    while done < total:
        try:
            msgs = await sub.fetch(200, timeout=0.02)
        except TimeoutError:  # nats-py raises both its own and plain asyncio timeouts
            continue
        futures = [
            await js.publish_async(f"{dst}.x", m.data, headers={"Nats-Msg-Id": f"{i}-{m.reply}"})
            for m in msgs
        ]
        await asyncio.gather(*futures)
        for m in msgs:
            await m.ack()
        done += len(msgs)
    used = time.process_time() - started
    await nc.close()
    return used


def _hop_process(url: str, tag: str, i: int, total: int, cpu: mp.Queue[float]) -> None:
    cpu.put(uvloop.run(_hop(url, tag, i, total)))  # uvloop: the services' event loop


async def _produce(
    js: JetStreamContext, subject: str, total: int, rate: float | None, size: int
) -> None:
    pad = b"x" * max(0, size - _STAMP.size)
    started = time.perf_counter()
    pending = []
    for n in range(total):
        if rate:
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        payload = _STAMP.pack(time.time_ns()) + pad
        pending.append(
            await js.publish_async(f"{subject}.x", payload, headers={"Nats-Msg-Id": f"p{n}"})
        )
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def _sink(
    js: JetStreamContext, stream: str, total: int, latencies: list[float], deadline_s: float
) -> float:
    sub = await js.pull_subscribe_bind("hop", stream=stream)
    deadline = time.monotonic() + deadline_s
    while len(latencies) < total and time.monotonic() < deadline:
        try:
            msgs = await sub.fetch(500, timeout=0.05)
        except TimeoutError:  # nats-py raises both its own and plain asyncio timeouts
            continue
        now = time.time_ns()
        for m in msgs:
            latencies.append((now - _STAMP.unpack_from(m.data)[0]) / 1e6)
            await m.ack()
    return time.perf_counter()


async def run(
    url: str, total: int, rate: float | None = None, size: int = 1024, deadline_s: float = 300.0
) -> RunFigures:
    """Push ``total`` events through four raw hops (offered at ``rate``/s, or flat out)."""
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    await _setup(url, tag)
    ctx = mp.get_context("spawn")
    cpu: mp.Queue[float] = ctx.Queue()
    hops = [ctx.Process(target=_hop_process, args=(url, tag, i, total, cpu)) for i in range(HOPS)]
    for p in hops:
        p.start()
    nc = await nats.connect(url)
    js = nc.jetstream()
    latencies: list[float] = []
    await asyncio.sleep(1.0)  # let the hop processes bind
    own_cpu_before = time.process_time()
    started = time.perf_counter()
    sink = asyncio.create_task(_sink(js, _stream(HOPS, tag)[0], total, latencies, deadline_s))
    await _produce(js, _stream(0, tag)[1], total, rate, size)
    finished = await sink
    cpu_s = sum(cpu.get(timeout=30) for _ in hops) + time.process_time() - own_cpu_before
    for p in hops:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    for i in range(HOPS + 1):
        await js.delete_stream(_stream(i, tag)[0])
    await nc.close()
    if len(latencies) < total:
        raise RuntimeError(f"only {len(latencies)} of {total} events arrived")
    q = statistics.quantiles(latencies, n=100)
    return RunFigures(
        events=total,
        offered_per_s=rate,
        events_per_s=total / (finished - started),
        p50_ms=q[49],
        p95_ms=q[94],
        p99_ms=q[98],
        cpu_s_per_1000=cpu_s / total * 1000,
    )
