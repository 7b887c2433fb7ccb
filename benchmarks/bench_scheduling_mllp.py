"""`make bench`: HL7 over MLLP into the scheduling adapter, ACK after the JetStream store.

The adapter runs as its own process (`carebus-scheduling serve`) against a NATS server of
this benchmark's own; the load generator, in this process, opens several MLLP connections
and on each sends SIU^S12 messages stop-and-wait (send, wait for the AA, send the next), as
HL7 senders in original mode do.  In the same run, the baseline: raw nats-py JetStream
publishes of the same canonical event bytes (same payload size, same stream), first with the
same stop-and-wait concurrency (one awaited publish at a time per "connection"), then fully
pipelined (`publish_async`).  Printed side by side with their ratios; kept in
.data/bench/scheduling.json.

Also runnable without pytest, from the repository root:
``.venv/bin/python -m benchmarks.bench_scheduling_mllp``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from benchmarks.bench_report import report
from carebus_contracts import encode, subject_for
from carebus_contracts.subjects import STREAM_SCHEDULING
from carebus_scheduling_adapter.adapters.hl7_siu import map_siu
from carebus_scheduling_adapter.adapters.hl7_siu_contract import to_contract
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.devstack.postgres_server import PostgresServer
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.mllp import frame

CONNECTIONS = 8
PER_CONNECTION = 600
WARM_UP = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")


def siu(control_id: str) -> bytes:
    npi = "1234567893^SMITH^ANNA^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI"
    slot = "20250310091500-0600"
    return "\r".join(
        [
            "MSH|^~\\&|CADENCE|SITE01|CAREBUS|CAREBUS|20250301120000-0600||SIU^S12|"
            f"{control_id}|P|2.5.1",
            f"SCH|P-{control_id}|F-{control_id}|||||CHECKUP^Annual check-up|ROUTINE|30|min|"
            f"^^30^{slot}",
            "PID|1||MRN-1001^^^SITE01^MR||DOE^JANE||19800101|F",
            f"PV1|1|O|CLINIC-A^101^^SITE01||||{npi}",
            f"AIS|1|A|99213^Office visit^CPT|{slot}|||30|min",
            f"AIL|1||CLINIC-A^101^^SITE01||{slot}|||30|min",
            f"AIP|1||{npi}|PRIMARY||{slot}|||30|min",
        ]
    ).encode()


def canonical_payload() -> tuple[str, bytes]:
    """The subject and bytes of the event one of the messages above becomes."""
    event = to_contract(map_siu(siu("SIZE-1"), default_tz="UTC"), recorded_at=datetime.now(UTC))
    return subject_for(event), encode(event)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


@contextmanager
def adapter_process(nats_url: str, database_url: str, log: Path) -> Iterator[tuple[int, int]]:
    http_port, mllp_port = free_port(), free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CAREBUS_SCHEDULING_ADAPTER_HTTP_PORT": str(http_port),
        "CAREBUS_SCHEDULING_ADAPTER_MLLP_PORT": str(mllp_port),
        "CAREBUS_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "carebus_scheduling_adapter.entrypoints.cli", "serve"]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{http_port}/health/ready"
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"adapter not ready; see {log}")
        yield process.pid, mllp_port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _connection(port: int, prefix: str, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            started = time.perf_counter()
            writer.write(frame(siu(f"{prefix}-{i}")))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
            latencies.append(time.perf_counter() - started)
            if b"MSA|AA|" not in ack:
                raise AssertionError(f"not AA: {ack!r}")
    finally:
        writer.close()


async def mllp_run(port: int, tag: str, per_connection: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, f"{tag}{c}", per_connection, latencies) for c in range(CONNECTIONS))
    )
    return time.perf_counter() - started, latencies


async def baseline_runs(
    nats_url: str, subject: str, payload: bytes, total: int
) -> dict[str, float]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        per = total // CONNECTIONS

        async def stop_and_wait(c: int) -> None:
            for i in range(per):
                await js.publish(subject, payload, headers={"Nats-Msg-Id": f"sw-{c}-{i}"})

        started = time.perf_counter()
        await asyncio.gather(*(stop_and_wait(c) for c in range(CONNECTIONS)))
        stop_and_wait_s = time.perf_counter() - started

        started = time.perf_counter()
        futures = [
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": f"pl-{i}"})
            for i in range(per * CONNECTIONS)
        ]
        acks = await asyncio.gather(*futures)
        pipelined_s = time.perf_counter() - started
        assert all(isinstance(a, api.PubAck) and not a.duplicate for a in acks)
        return {
            "stop_and_wait_per_s": per * CONNECTIONS / stop_and_wait_s,
            "pipelined_per_s": per * CONNECTIONS / pipelined_s,
        }
    finally:
        await nc.close()


async def _prepare(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream(), TOPOLOGY)
    finally:
        await nc.close()


async def _stored(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(STREAM_SCHEDULING)).state.messages
    finally:
        await nc.close()


def measure(database_url: str, workdir: Path) -> dict[str, Any]:
    server = NatsServer(workdir / "nats")
    server.start()
    try:
        asyncio.run(_prepare(server.url))
        subject, payload = canonical_payload()
        total = CONNECTIONS * PER_CONNECTION
        with adapter_process(server.url, database_url, workdir / "adapter.log") as (pid, port):
            asyncio.run(mllp_run(port, "warm", WARM_UP // CONNECTIONS))
            cpu_before = _cpu_s(pid)
            seconds, latencies = asyncio.run(mllp_run(port, "run", PER_CONNECTION))
            cpu_used = _cpu_s(pid) - cpu_before
        stored_after_mllp = asyncio.run(_stored(server.url))
        baseline = asyncio.run(baseline_runs(server.url, subject, payload, total))
    finally:
        server.stop()
    assert stored_after_mllp == total + WARM_UP // CONNECTIONS * CONNECTIONS
    mllp_per_s = total / seconds
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "connections": CONNECTIONS,
        "messages": total,
        "event_bytes": len(payload),
        "mllp_ack_after_store_per_s": mllp_per_s,
        "mllp_p50_ms": quantiles[49] * 1000,
        "mllp_p99_ms": quantiles[98] * 1000,
        "adapter_cpu_us_per_message": cpu_used / total * 1e6,
        "raw_js_stop_and_wait_per_s": baseline["stop_and_wait_per_s"],
        "raw_js_pipelined_per_s": baseline["pipelined_per_s"],
        "ratio_to_stop_and_wait": mllp_per_s / baseline["stop_and_wait_per_s"],
        "ratio_to_pipelined": mllp_per_s / baseline["pipelined_per_s"],
    }


def test_mllp_throughput_next_to_raw_jetstream(database_url: str, tmp_path: Path) -> None:
    figures = measure(database_url, tmp_path)
    report("scheduling", figures)
    assert figures["mllp_ack_after_store_per_s"] > 0


def _main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            report("scheduling", measure(database_url, Path(tmp)))
            return
        pg = PostgresServer(Path(tmp) / "pg", durable=False)
        pg.start()
        try:
            report("scheduling", measure(pg.dsn, Path(tmp)))
        finally:
            pg.stop()


if __name__ == "__main__":
    _main()
