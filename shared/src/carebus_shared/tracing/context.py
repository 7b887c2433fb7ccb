"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the ``traceparent`` an input
arrives with or starts, carried in every published event's NATS headers.

The context is a plain value (four strings) and the current one lives in a ContextVar, so
that taking it along costs a dict lookup per event: no span objects on the hot path
(docs/decisions/020). Two scopes are active while code runs:

- ``activate(ctx)``: one input handled at a time (an HTTP request, an MLLP message);
- ``activate_batch(...)``: a stage's batch, each input's own context under its event id,
  so that an output finds its input's context by its causation id.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# version-traceid-parentid-flags; a future version may append "-..." fields (spec §3.2.4).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# A tracestate is kept as it came, up to the length the spec asks vendors to propagate.
TRACESTATE_MAX = 512
_SAMPLED = "01"


# Not frozen: a frozen dataclass costs several times as much to build (docs/decisions/011);
# nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex: the span this context's holder works in
    flags: str = _SAMPLED
    tracestate: str | None = None
    # Written once: every output of the input carries it.
    traceparent: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        self.traceparent = f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """The same trace, a new span of ours under this one."""
        return TraceContext(self.trace_id, new_span_id(), self.flags, self.tracestate)

    def headers(self) -> dict[str, str]:
        if self.tracestate:
            return {TRACEPARENT: self.traceparent, TRACESTATE: self.tracestate}
        return {TRACEPARENT: self.traceparent}


def new_span_id() -> str:
    # random.getrandbits is what the OpenTelemetry SDK's id generator uses too.
    while (bits := random.getrandbits(64)) == 0:
        pass  # an all-zero id is invalid; one draw in 2**64
    return f"{bits:016x}"


def new_trace() -> TraceContext:
    while (bits := random.getrandbits(128)) == 0:
        pass
    return TraceContext(f"{bits:032x}", new_span_id())


def parse(traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
    """The context a ``traceparent`` header names, or None when it is absent or malformed
    (the spec's rule: the receiver then starts a new trace, it never fails the request)."""
    if not traceparent:
        return None
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    state = tracestate.strip() if tracestate else None
    if state and len(state) > TRACESTATE_MAX:
        state = None  # the spec allows dropping it whole rather than cutting an entry
    # We speak version 00: a higher version's first four fields are read as 00's (§4.3).
    return TraceContext(trace_id, span_id, flags, state or None)


def from_headers(headers: Mapping[str, str] | None) -> TraceContext | None:
    if not headers:
        return None
    return parse(headers.get(TRACEPARENT), headers.get(TRACESTATE))


def continued(traceparent: str | None, tracestate: str | None = None) -> TraceContext:
    """Our span for an input: a child of the context it came with, else a new trace."""
    parent = parse(traceparent, tracestate)
    return new_trace() if parent is None else parent.child()


_current: ContextVar[TraceContext | None] = ContextVar("carebus_trace", default=None)
_batch: ContextVar[Mapping[str, TraceContext] | None] = ContextVar(
    "carebus_trace_batch", default=None
)


def current() -> TraceContext | None:
    return _current.get()


@contextlib.contextmanager
def activate(ctx: TraceContext | None) -> Iterator[TraceContext | None]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextlib.contextmanager
def activate_batch(by_event_id: Mapping[str, TraceContext]) -> Iterator[None]:
    token = _batch.set(by_event_id)
    try:
        yield
    finally:
        _batch.reset(token)


def for_event(event_id: str | None) -> TraceContext | None:
    """The context of the input ``event_id`` in the batch in hand, else the current one."""
    if event_id:
        batch = _batch.get()
        if batch is not None:
            found = batch.get(event_id)
            if found is not None:
                return found
    return _current.get()


def with_trace(headers: Mapping[str, str], ctx: TraceContext | None) -> Mapping[str, str]:
    """``headers`` with ``ctx``'s trace headers (unchanged when there is no context)."""
    if ctx is None:
        return headers
    return {**headers, **ctx.headers()}
