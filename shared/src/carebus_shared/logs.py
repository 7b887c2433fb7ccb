"""Structured JSON logs carrying event, correlation, causation and trace ids — never payloads.

Message payloads carry patient data, so nothing here logs a body; handlers bind the ids of
the event they work on with ``bind_event`` and every log line inside picks them up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec

from carebus_shared.tracing import context as trace

_event_ids: ContextVar[dict[str, str] | None] = ContextVar("carebus_event_ids", default=None)
_encoder = msgspec.json.Encoder()

# LogRecord attributes that are plumbing, not content.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


@contextlib.contextmanager
def bind_event(
    event_id: str | None, correlation_id: str | None = None, causation_id: str | None = None
) -> Iterator[None]:
    """Attach an event's ids to every log line written inside the block."""
    ids = {
        k: v
        for k, v in (
            ("event_id", event_id),
            ("correlation_id", correlation_id),
            ("causation_id", causation_id),
        )
        if v
    }
    token = _event_ids.set(ids)
    try:
        yield
    finally:
        _event_ids.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ids = _event_ids.get() or {}
        line.update(ids)
        # The trace of the input in hand: an HTTP request's, an MLLP message's, or (in a
        # stage batch) that of the event bound with bind_event.
        ctx = trace.for_event(ids.get("event_id"))
        if ctx is not None:
            line["trace_id"], line["span_id"] = ctx.trace_id, ctx.span_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route all logging (ours, FastStream's, uvicorn's) to one JSON stream on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # One line per HTTP probe or per message would drown the useful lines.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("faststream.access").setLevel(logging.WARNING)
