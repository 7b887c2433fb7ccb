"""OpenTelemetry export: spans reach an OTLP/HTTP collector (a tiny one on loopback, here)
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and nothing is sent when it is not. The spans
are a stage batch's, on a real JetStream: each a child of its input's traceparent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence

import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.stage import Forward, Outcome, run_batch
from carebus_shared.tracing import export
from tests.support.otlp_collector import Collector, running_collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running_collector() as found:
        yield found


async def _no_records(records: Sequence[ExceptionRecord]) -> None:
    raise AssertionError("nothing is rejected here")


async def _one_batch(js: JetStreamContext) -> None:
    """A stage batch of two inputs: one with the caller's traceparent, one without."""
    tag = uuid.uuid4().hex[:8]
    src = f"XIN_{tag}"
    await js.add_stream(name=src, subjects=[f"xin{tag}.>"])
    await js.add_consumer(
        src, api.ConsumerConfig(durable_name="stage", ack_policy=api.AckPolicy.EXPLICIT)
    )
    await js.publish(
        f"xin{tag}.x",
        b"{}",
        headers={"Nats-Msg-Id": "a", "traceparent": f"00-{TRACE}-{PARENT}-01"},
    )
    await js.publish(f"xin{tag}.x", b"{}", headers={"Nats-Msg-Id": "b"})
    sub = await js.pull_subscribe_bind("stage", stream=src)
    msgs: list[Msg] = []
    for _ in range(10):
        if len(msgs) == 2:
            break
        with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
            msgs += await sub.fetch(2 - len(msgs), timeout=1)

    async def forward(batch: Sequence[Msg]) -> list[Outcome]:
        return [Forward() for _ in batch]

    tally = await run_batch("mapper", js, msgs, forward, _no_records)
    assert tally.forwarded == 2


async def test_spans_reach_the_collector_when_an_endpoint_is_set(
    js: JetStreamContext, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert export.configure_export("mapper")
    try:
        await _one_batch(js)
    finally:
        export.shutdown_export()  # flushes what the batch processor holds
    assert set(collector.paths) == {"/v1/traces"}
    spans = collector.spans()
    assert {service for service, _ in spans} == {"mapper"}
    by_trace = {span.trace_id.hex(): span for _, span in spans}  # type: ignore[attr-defined]
    assert len(by_trace) == 2
    continued = by_trace[TRACE]
    assert continued.parent_span_id.hex() == PARENT
    assert continued.name == "mapper process"
    attributes = {a.key for a in continued.attributes}
    assert attributes == {
        "carebus.stage", "carebus.outcome", "messaging.system",
        "messaging.destination.name", "messaging.batch.message_count",
    }  # fmt: skip
    [started] = [s for t, s in by_trace.items() if t != TRACE]
    assert started.parent_span_id == b""  # a new trace: a root span


async def test_nothing_is_sent_without_an_endpoint(
    js: JetStreamContext, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not export.configure_export("mapper")
    await _one_batch(js)
    export.shutdown_export()
    assert collector.received == []


def test_the_sdk_switch_wins_over_an_endpoint() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert export.export_wanted(environ)
    assert not export.export_wanted(environ | {"OTEL_SDK_DISABLED": "true"})
    assert not export.export_wanted(environ | {"OTEL_TRACES_EXPORTER": "none"})
    assert not export.export_wanted({})
