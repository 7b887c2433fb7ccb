"""`make bench`: the raw four-hop JetStream baseline on its own (the pipeline benchmark
measures it again in its own run, for its ratio)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from benchmarks.bench_report import report
from benchmarks.raw_hops import run


def test_raw_four_hop_baseline(nats_url: str) -> None:
    flat_out = asyncio.run(run(nats_url, 20_000))
    at_500 = asyncio.run(run(nats_url, 5_000, rate=500))
    report(
        "raw_baseline",
        {
            "events_per_s": flat_out.events_per_s,
            "cpu_s_per_1000_events": flat_out.cpu_s_per_1000,
            "p50_ms_at_500": at_500.p50_ms,
            "p99_ms_at_500": at_500.p99_ms,
            "runs": [asdict(flat_out), asdict(at_500)],
        },
    )
    assert flat_out.events == 20_000
