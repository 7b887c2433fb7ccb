"""`make bench`: what `carebus replay` itself costs, without a stage (docs/decisions/015).

20,000 messages of 1 KB on the SCHEDULING stream, on a NATS server with the dev stack's
``sync_interval: always`` and on one with the server default. Per server: reading the whole
window with nats-py's ordered push consumer (``next_msg`` per message: the reader the
mapper's shadow replay had) beside the shared window reader (pulls of 500 from an ephemeral
consumer that acknowledges nothing), then a full replay's republishing (read, copy,
publish confirmed in chunks of 500). Only the server's write rate limits the last.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext, api

from benchmarks.bench_report import report
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.jetstream.window import Window, measure, read_span
from carebus_shared.replay.republish import Tally, republish

MESSAGES = 20_000
PAYLOAD = b'{"n": "' + b"x" * 1000 + b'"}'
SUBJECT = "scheduling.>"


async def _seed(js: JetStreamContext) -> None:
    await provision(js, TOPOLOGY)
    for start in range(0, MESSAGES, 1000):
        await publish_confirmed(
            js,
            [
                Outgoing(f"scheduling.appointment.booked.v1.S{n % 40}", PAYLOAD, f"evt-{n}")
                for n in range(start, min(MESSAGES, start + 1000))
            ],
        )


async def _ordered_push(js: JetStreamContext) -> float:
    started = time.perf_counter()
    sub = await js.subscribe(
        SUBJECT,
        stream="SCHEDULING",
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
    )
    for _ in range(MESSAGES):
        msg = await sub.next_msg(timeout=5)
        _ = msg.metadata
    await sub.unsubscribe()
    return MESSAGES / (time.perf_counter() - started)


async def _pulls(js: JetStreamContext) -> float:
    started = time.perf_counter()
    span = await measure(js, "SCHEDULING", SUBJECT, Window(from_seq=1))
    read = 0
    async for _ in read_span(js, span):
        read += 1
    assert read == MESSAGES
    return read / (time.perf_counter() - started)


async def _republish(js: JetStreamContext) -> float:
    started = time.perf_counter()
    span = await measure(js, "SCHEDULING", SUBJECT, Window(from_seq=1, to_seq=MESSAGES))
    tally = await republish(js, span, 1, Tally())
    assert tally.republished == MESSAGES
    return MESSAGES / (time.perf_counter() - started)


async def _run(url: str) -> dict[str, float]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await _seed(js)
        return {
            "read, ordered push consumer (msg/s)": await _ordered_push(js),
            "read, window reader (msg/s)": await _pulls(js),
            "replay republish (msg/s)": await _republish(js),
        }
    finally:
        await nc.close()


def test_replay_rates(tmp_path: Path) -> None:
    figures: dict[str, float] = {}
    for sync in ("always", None):
        server = NatsServer(tmp_path / f"nats-{sync}", sync_interval=sync)
        server.start()
        try:
            measured = asyncio.run(_run(server.url))
        finally:
            server.stop(kill=True)
        figures |= {f"{k}, sync {sync or 'default'}": v for k, v in measured.items()}
    report("replay", figures)
