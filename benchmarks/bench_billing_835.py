"""`make bench`: 835 claims/s parsed, balanced, mapped and published with confirmation by the
billing adapter (HTTP upload into the running app, real NATS + PostgreSQL), next to a raw
nats-py JetStream publish baseline of the same number of messages of the same size, measured
in the same run. Figures are printed and written to .data/bench/billing.json.

Run alone: .venv/bin/pytest benchmarks/bench_billing_835.py -s
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import statistics
import time

import nats
from nats.js import api

from benchmarks.bench_report import report
from carebus_billing_adapter.adapters.x12 import parse_835
from carebus_billing_adapter.domain.remittance_events import (
    RemittanceContext,
    remittance_events,
)
from carebus_contracts import encode
from tests.support.billing import running_adapter

FILES = int(os.environ.get("BENCH_835_FILES", "10"))
CLAIMS_PER_FILE = int(os.environ.get("BENCH_835_CLAIMS", "1000"))
EVENTS_PER_CLAIM = 5  # adjudication, payment, three CAS adjustments


def make_835(file_no: int, claims: int) -> str:
    """A balanced 835: every claim charges 150.00 over two lines and is paid 100.00."""
    body = [
        "ST*835*0001",
        f"BPR*I*{claims * 100}.00*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA"
        "*98765*20240105",
        f"TRN*1*TRACE{file_no}*1512345678",
        "DTM*405*20240104",
        "N1*PR*ACME PAYER",
        "REF*2U*ACME",
        "N1*PE*GOOD CLINIC*XX*1234567893",
        "LX*1",
    ]
    for i in range(claims):
        body += [
            f"CLP*PCN-{file_no}-{i}*1*150.00*100.00*20.00*12*ICN{file_no}X{i}",
            f"NM1*QC*1*DOE*JANE****MI*M{i}",
            "SVC*HC:99213*100.00*70.00**1",
            "DTM*472*20240101",
            "CAS*CO*45*10.00",
            "CAS*PR*1*20.00",
            "SVC*HC:85025*50.00*30.00**1",
            "DTM*472*20240101",
            "CAS*CO*45*20.00",
        ]
    body.append(f"SE*{len(body) + 1}*0001")
    control = f"{file_no:09d}"
    isa = (
        "ISA*00*          *00*          *ZZ*PAYER          *ZZ*CLINIC         *240101*1200*^*"
        f"00501*{control}*0*P*:"
    )
    segments = [isa, "GS*HP*PAYER*CLINIC*20240101*1200*7*X*005010X221A1", *body]
    return "~\n".join([*segments, "GE*1*7", f"IEA*1*{control}"]) + "~\n"


async def _adapter_run(nats_url: str, database_url: str, files: list[bytes]) -> dict[str, float]:
    async with running_adapter(nats_url, database_url, default_site="BENCH") as run:
        before = (await run.js.stream_info("BILLING")).state.messages
        cpu, started = time.process_time(), time.perf_counter()
        for raw in files:
            response = await run.http.post("/v1/remittances", content=raw)
            assert response.status_code == 201, response.text[:500]
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu
        published = (await run.js.stream_info("BILLING")).state.messages - before
    claims = len(files) * CLAIMS_PER_FILE
    assert published == claims * EVENTS_PER_CLAIM
    return {
        "claims_per_s": claims / elapsed,
        "events_per_s": published / elapsed,
        "elapsed_s": elapsed,
        "cpu_s": cpu_used,
        # The adapter runs in this process: the HTTP client's share is small next to parsing
        # and publishing 5,000 events per request.
        "cpu_us_per_event": cpu_used / published * 1e6,
    }


async def _raw_baseline(nats_url: str, messages: int, size: int) -> dict[str, float]:
    """nats-py publish_async, pipelined, every ack awaited: the floor of any JetStream publisher."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = "BENCH_RAW_BILLING"
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(name)
    await js.add_stream(
        api.StreamConfig(
            name=name,
            subjects=["benchraw.billing.>"],
            storage=api.StorageType.FILE,
            duplicate_window=24 * 3600,
        )
    )
    payload = b"x" * size
    try:
        cpu, started = time.process_time(), time.perf_counter()
        batch = 5_000  # the adapter publishes a file's events in one pipelined burst, too
        for start in range(0, messages, batch):
            futures = [
                await js.publish_async(
                    "benchraw.billing.event", payload, headers={"Nats-Msg-Id": f"raw-{n}"}
                )
                for n in range(start, min(start + batch, messages))
            ]
            await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu
        stored = (await js.stream_info(name)).state.messages
        assert stored == messages
    finally:
        await js.delete_stream(name)
        await nc.close()
    return {
        "messages_per_s": messages / elapsed,
        "elapsed_s": elapsed,
        "cpu_s": cpu_used,
        "cpu_us_per_message": cpu_used / messages * 1e6,
    }


def _context() -> RemittanceContext:
    return RemittanceContext(
        site="BENCH", source_system="x12-835", timezone=dt.UTC, recorded_at=dt.datetime.now(dt.UTC)
    )


def _parse_only(files: list[bytes]) -> float:
    context = _context()
    started = time.perf_counter()
    for raw in files:
        for remittance in parse_835(raw):
            for event in remittance_events(remittance, context):
                encode(event)
    return len(files) * CLAIMS_PER_FILE / (time.perf_counter() - started)


def test_835_claims_per_second_against_raw_publish(nats_url: str, database_url: str) -> None:
    files = [make_835(n, CLAIMS_PER_FILE).encode() for n in range(1, FILES + 1)]
    sample = [len(encode(e)) for r in parse_835(files[0]) for e in remittance_events(r, _context())]
    payload = int(statistics.mean(sample))
    parse_rate = _parse_only(files)
    adapter = asyncio.run(_adapter_run(nats_url, database_url, files))
    messages = FILES * CLAIMS_PER_FILE * EVENTS_PER_CLAIM
    raw = asyncio.run(_raw_baseline(nats_url, messages, payload))
    raw_claims_per_s = raw["messages_per_s"] / EVENTS_PER_CLAIM
    report(
        "billing",
        {
            "files": FILES,
            "claims_per_file": CLAIMS_PER_FILE,
            "events_per_claim": EVENTS_PER_CLAIM,
            "mean_event_bytes": payload,
            "adapter_claims_per_s": adapter["claims_per_s"],
            "adapter_events_per_s": adapter["events_per_s"],
            "adapter_cpu_s": adapter["cpu_s"],
            "adapter_cpu_us_per_event": adapter["cpu_us_per_event"],
            "parse_map_encode_only_claims_per_s": parse_rate,
            "raw_publish_messages_per_s": raw["messages_per_s"],
            "raw_publish_claim_equivalent_per_s": raw_claims_per_s,
            "raw_publish_cpu_s": raw["cpu_s"],
            "raw_publish_cpu_us_per_message": raw["cpu_us_per_message"],
            "ratio_adapter_to_raw": adapter["claims_per_s"] / raw_claims_per_s,
        },
    )
    assert adapter["claims_per_s"] > 0
