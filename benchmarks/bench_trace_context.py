"""Micro benchmark: what trace context costs a stage per event, against no tracing, in the
same run (docs/decisions/020).

Each variant runs a stage's per-event publishing work on batches of 100 (a real contract
event built into an ``Outgoing``: subject, encoding, headers) with the tracing each adds:
- ``none``: no trace context (the pipeline before tracing);
- ``carebus``: ours, as shipped: the batch's contexts (header read, W3C parse, new span id
  per input), the output finding its input's context, the headers stamped;
- ``otel_propagator``: the same with OpenTelemetry's ``TraceContextTextMapPropagator``
  (extract to a Context, a NonRecordingSpan child with a new id, inject into a carrier);
- ``carebus_exporting``: ours with the SDK's spans on (one per input, ended per batch,
  batch processor and OTLP/HTTP exporter sending to a loopback collector).

Time is CPU (``time.process_time``, all threads: the exporter's too) per event, median of
rounds; the variants alternate within each round.

Run: ``.venv/bin/pytest benchmarks/bench_trace_context.py -s``
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from nats.aio.msg import Msg

from benchmarks.bench_report import report
from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.erp import JournalRejected
from carebus_shared.jetstream.publish import Outgoing, outgoing_for, traced
from carebus_shared.tracing import context as trace
from carebus_shared.tracing import export
from carebus_shared.tracing.context import TraceContext, new_span_id
from carebus_shared.tracing.stage import StageTraces
from tests.support.otlp_collector import Collector, running_collector

BATCH = 100
BATCHES = 50  # events per round: 5,000
ROUNDS = 7

Variant = Callable[[Sequence[Msg], Sequence[JournalRejected]], list[Outgoing]]


def _events(n: int) -> list[JournalRejected]:
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    return [
        JournalRejected(
            event_id=f"out-{i}", occurred_at=now, recorded_at=now, site="SITE01",
            source_system="bench", correlation_id=f"c-{i}", causation_id=f"in-{i}",
            entity_key=f"J-{i}", entity_version=1, journal_id=f"J-{i}",
            error_code="closed_period", message="period closed", retryable=False,
            rejected_at=now,
        )
        for i in range(n)
    ]  # fmt: skip


def _inputs(n: int) -> list[Msg]:
    msgs = []
    for i in range(n):
        headers = {
            "Nats-Msg-Id": f"in-{i}",
            "traceparent": f"00-{i + 1:032x}-{new_span_id()}-01",
        }
        reply = f"$JS.ACK.VALIDATED.mapper.1.{i + 1}.{i + 1}.1700000000000000000.0"
        msgs.append(Msg(None, subject="x", reply=reply, data=b"{}", headers=headers))  # type: ignore[arg-type]
    return msgs


def untraced(msgs: Sequence[Msg], events: Sequence[JournalRejected]) -> list[Outgoing]:
    return [Outgoing(subject_for(e), encode(e), e.event_id, headers_for(e)) for e in events]


def carebus(msgs: Sequence[Msg], events: Sequence[JournalRejected]) -> list[Outgoing]:
    batch = StageTraces("mapper", msgs)
    with trace.activate_batch(batch.by_event_id):
        out = [outgoing_for(e) for e in events]
    stamped = [traced(o, batch.context_of(m)) for m, o in zip(msgs, out, strict=True)]
    batch.end([None] * len(msgs))
    return stamped


def otel_propagator(msgs: Sequence[Msg], events: Sequence[JournalRejected]) -> list[Outgoing]:
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator, ids = TraceContextTextMapPropagator(), RandomIdGenerator()
    out = []
    for msg, event in zip(msgs, events, strict=True):
        parent = otel.get_current_span(propagator.extract(msg.headers or {})).get_span_context()
        child = otel.SpanContext(
            parent.trace_id, ids.generate_span_id(), False, parent.trace_flags, parent.trace_state
        )
        carrier: dict[str, str] = dict(headers_for(event))
        propagator.inject(carrier, otel.set_span_in_context(otel.NonRecordingSpan(child)))
        out.append(Outgoing(subject_for(event), encode(event), event.event_id, carrier))
    return out


def _cpu_per_event(variant: Variant, msgs: list[Msg], events: list[JournalRejected]) -> float:
    started = time.process_time()
    for b in range(BATCHES):
        variant(msgs[b * BATCH : (b + 1) * BATCH], events[b * BATCH : (b + 1) * BATCH])
    return (time.process_time() - started) / (BATCH * BATCHES) * 1e6


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running_collector() as found:
        yield found


def test_trace_context_costs_per_event(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs, events = _inputs(BATCH * BATCHES), _events(BATCH * BATCHES)
    # The shipped path must produce what it promises, or the timing means nothing.
    first = carebus(msgs[:1], events[:1])[0]
    ctx = trace.parse(first.headers["traceparent"])
    assert isinstance(ctx, TraceContext)
    assert ctx.trace_id == f"{1:032x}"

    rounds: dict[str, list[float]] = {k: [] for k in ("none", "carebus", "otel_propagator")}
    exporting: list[float] = []
    for _ in range(ROUNDS):
        rounds["none"].append(_cpu_per_event(untraced, msgs, events))
        rounds["carebus"].append(_cpu_per_event(carebus, msgs, events))
        rounds["otel_propagator"].append(_cpu_per_event(otel_propagator, msgs, events))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    assert export.configure_export("bench")
    try:
        for _ in range(ROUNDS):
            started = time.process_time()
            _cpu_per_event(carebus, msgs, events)
            export.shutdown_export()  # the export's own CPU (encode, send) counted too
            exporting.append((time.process_time() - started) / (BATCH * BATCHES) * 1e6)
            export.configure_export("bench")
    finally:
        export.shutdown_export()
    assert collector.received  # the spans did go out

    median = {k: statistics.median(v) for k, v in rounds.items()}
    median["carebus_exporting"] = statistics.median(exporting)
    base = median["none"]
    figures: dict[str, float] = {}
    for name, us in median.items():
        figures[f"{name}_cpu_us_per_event"] = round(us, 2)
        figures[f"{name}_ratio_to_none"] = round(us / base, 2)
    figures["carebus_added_cpu_us_per_event"] = round(median["carebus"] - base, 2)
    report("trace_context", figures)
