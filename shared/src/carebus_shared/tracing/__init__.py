"""W3C trace context through the pipeline, and optional OpenTelemetry span export
(docs/decisions/020)."""
