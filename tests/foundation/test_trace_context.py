"""W3C trace context: parsing per the spec, and a stage batch carrying each input's trace
to its outputs (real JetStream)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from carebus_contracts.erp import JournalRejected
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import Outgoing, outgoing_for, publish_confirmed
from carebus_shared.jetstream.stage import Forward, Outcome, run_batch
from carebus_shared.logs import JsonFormatter, bind_event
from carebus_shared.tracing.context import (
    TraceContext,
    activate,
    continued,
    new_trace,
    parse,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"
TRACEPARENT_SHAPE = r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"


def test_a_valid_traceparent_is_read_as_the_spec_writes_it() -> None:
    ctx = parse(VALID, "congo=t61rcWkgMzE")
    assert ctx == TraceContext(TRACE, PARENT, "01", "congo=t61rcWkgMzE")
    assert ctx.traceparent == VALID


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        VALID.upper(),  # the spec's hex is lowercase
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00_{TRACE}_{PARENT}_01",
    ],
)
def test_a_malformed_traceparent_is_ignored(header: str) -> None:
    assert parse(header, "congo=t61rcWkgMzE") is None
    ours = continued(header)
    assert ours.trace_id != TRACE
    assert len(ours.trace_id) == 32
    assert parse(ours.traceparent) == TraceContext(ours.trace_id, ours.span_id, "01")


def test_a_future_version_is_read_by_its_first_four_fields() -> None:
    ctx = parse(f"cc-{TRACE}-{PARENT}-01-what-comes-later")
    assert ctx is not None
    assert (ctx.trace_id, ctx.span_id) == (TRACE, PARENT)


def test_a_child_keeps_the_trace_and_takes_a_span_of_its_own() -> None:
    parent = parse(VALID, "a=1")
    assert parent is not None
    children = {parent.child().span_id for _ in range(100)}
    assert len(children) == 100
    assert PARENT not in children
    child = parent.child()
    assert (child.trace_id, child.flags, child.tracestate) == (TRACE, "01", "a=1")


def test_an_oversized_tracestate_is_dropped_not_cut() -> None:
    ctx = parse(VALID, "a=" + "x" * 600)
    assert ctx is not None
    assert ctx.tracestate is None


def _log_line(message: str) -> dict[str, object]:
    record = logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, message, (), None)
    parsed: dict[str, object] = json.loads(JsonFormatter("svc").format(record))
    return parsed


def test_log_lines_carry_the_active_trace_and_none_without() -> None:
    ctx = new_trace()
    with activate(ctx):
        line = _log_line("inside")
    assert (line["trace_id"], line["span_id"]) == (ctx.trace_id, ctx.span_id)
    assert "trace_id" not in _log_line("outside")


# -- a stage batch on a real JetStream --------------------------------------------------


async def _no_records(records: Sequence[ExceptionRecord]) -> None:
    raise AssertionError("nothing is rejected here")


def _rejected(event_id: str, site: str, causation_id: str) -> JournalRejected:
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    return JournalRejected(
        event_id=event_id,
        occurred_at=now,
        recorded_at=now,
        site=site,
        source_system="test",
        correlation_id="corr",
        causation_id=causation_id,
        entity_key="J-1",
        entity_version=1,
        journal_id="J-1",
        error_code="closed_period",
        message="period closed",
        retryable=False,
        rejected_at=now,
    )


async def test_each_output_carries_its_own_inputs_trace(private_nats: NatsServer) -> None:
    # A server of its own: its output stream takes erp.> subjects, which the suite's shared
    # server may already give to an ERP stream of another test ("subjects overlap").
    nc = await nats.connect(private_nats.url)
    try:
        await _each_output_carries_its_own_inputs_trace(nc.jetstream())
    finally:
        await nc.close()


async def _each_output_carries_its_own_inputs_trace(js: JetStreamContext) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"TIN_{tag}", f"TOUT_{tag}"
    await js.add_stream(name=src, subjects=[f"tin{tag}.>"])
    site = f"S{tag}"  # the handler's event's subject names its site: this test's own
    await js.add_stream(name=dst, subjects=[f"erp.*.*.*.{site}.*", f"tout{tag}.>"])
    await js.add_consumer(
        src, api.ConsumerConfig(durable_name="stage", ack_policy=api.AckPolicy.EXPLICIT)
    )
    sent = {
        "ev-traced": {"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"},
        "ev-bare": {},
        "ev-malformed": {"traceparent": "00-nonsense"},
    }
    for event_id, trace_headers in sent.items():
        await js.publish(f"tin{tag}.x", b"{}", headers={"Nats-Msg-Id": event_id, **trace_headers})
    sub = await js.pull_subscribe_bind("stage", stream=src)
    msgs: list[Msg] = []
    for _ in range(10):
        if len(msgs) == len(sent):
            break
        with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
            msgs += await sub.fetch(len(sent) - len(msgs), timeout=1)

    async def handle(batch: Sequence[Msg]) -> list[Outcome]:
        # Built outside any per-message scope, as the stages do: the runner adds the trace.
        forwarded = [
            Forward([Outgoing(f"tout{tag}.x", b"{}", f"out-{m.headers['Nats-Msg-Id']}")])  # type: ignore[index]
            for m in batch
        ]
        # Published by the handler itself (the mapper's journals): found by causation id.
        event = _rejected(f"rej-{tag}", site, causation_id="ev-traced")
        await publish_confirmed(js, [outgoing_for(event)])
        return forwarded

    with bind_event("unrelated"):
        tally = await run_batch("t", js, msgs, handle, _no_records)
    assert tally.published == 3

    out: dict[str, dict[str, str]] = {}
    info = await js.stream_info(dst)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await js.get_msg(dst, seq)
        out[stored.headers["Nats-Msg-Id"]] = dict(stored.headers or {})  # type: ignore[index]

    traced = parse(out["out-ev-traced"]["traceparent"], out["out-ev-traced"].get("tracestate"))
    assert traced is not None
    assert traced.trace_id == TRACE
    assert traced.span_id != PARENT
    assert traced.tracestate == "congo=t61rcWkgMzE"
    by_causation = parse(out[f"rej-{tag}"]["traceparent"])
    assert by_causation == TraceContext(TRACE, traced.span_id, "01", None)
    fresh = {parse(out[f"out-{e}"]["traceparent"]) for e in ("ev-bare", "ev-malformed")}
    assert None not in fresh
    assert len({c.trace_id for c in fresh if c}) == 2
    assert TRACE not in {c.trace_id for c in fresh if c}
