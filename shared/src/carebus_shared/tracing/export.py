"""OpenTelemetry span export: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and never while ``OTEL_SDK_DISABLED`` is true.

Off, a span is just a new span id (``TraceContext.child``), and the SDK is not even imported.
On, spans are the SDK's own (its sampler, ids, batch processor and OTLP/HTTP exporter, each
configured by the standard ``OTEL_*`` variables), on a tracer provider of ours rather than
the process-wide one. Span attributes never hold patient data or identifiers: a stage, a
stream, counts, an outcome.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from carebus_shared.tracing.context import TraceContext, new_trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("carebus.tracing")

Attributes = Mapping[str, str | int | float | bool]


class Span(Protocol):
    """What we do with a started span (the SDK's ``Span`` is one)."""

    def set_attributes(self, attributes: Attributes) -> None: ...

    def end(self, end_time: int | None = None) -> None: ...


def export_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


class _Exporter:
    def __init__(self, service: str) -> None:
        # Imported here: a service that does not export never loads the SDK.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still win: Resource.create reads them.
        resource = Resource.create({SERVICE_NAME: service})
        self.provider: TracerProvider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("carebus")

    def start(
        self, name: str, parent: TraceContext | None, start_ns: int
    ) -> tuple[TraceContext, Span]:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

        context = None
        if parent is not None:
            remote = SpanContext(
                int(parent.trace_id, 16),
                int(parent.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(parent.flags, 16)),
                trace_state=TraceState.from_header([parent.tracestate or ""]),
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self.tracer.start_span(name, context=context, start_time=start_ns)
        ours = span.get_span_context()
        flags = f"{int(ours.trace_flags):02x}"
        tracestate = parent.tracestate if parent is not None else None
        return TraceContext(
            f"{ours.trace_id:032x}", f"{ours.span_id:016x}", flags, tracestate
        ), span


_exporter: _Exporter | None = None


def configure_export(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Start exporting spans when the environment asks for it; True when it does."""
    global _exporter
    if _exporter is not None or not export_wanted(environ):
        return _exporter is not None
    _exporter = _Exporter(service)
    log.info("exporting trace spans over OTLP/HTTP")
    return True


def shutdown_export() -> None:
    """Send what is still queued (bounded by the SDK's export timeout), then stop."""
    global _exporter
    exporter, _exporter = _exporter, None
    if exporter is not None:
        exporter.provider.shutdown()


def exporting() -> bool:
    return _exporter is not None


def start_span(
    name: str, parent: TraceContext | None, start_ns: int | None = None
) -> tuple[TraceContext, Span | None]:
    """Our context for handling something that came with ``parent`` (None: a new trace),
    and the span to end when done (None while not exporting)."""
    if _exporter is None:
        return (new_trace() if parent is None else parent.child()), None
    return _exporter.start(name, parent, start_ns or time.time_ns())
