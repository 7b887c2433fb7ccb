"""A stage batch's trace contexts: each input's own span, a child of the context it came with.

Built once per batch (a header read, a parse and a new span id per message); the spans, when
exported, all start with the batch and end with it, each with its input's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_shared.tracing import export
from carebus_shared.tracing.context import TraceContext, from_headers
from carebus_shared.tracing.export import Span

MSG_ID = "Nats-Msg-Id"


class StageTraces:
    def __init__(self, stage: str, msgs: Sequence[Msg]) -> None:
        self._stage = stage
        self._msgs = msgs
        self._spans: list[Span | None] = []
        self._by_msg: dict[int, TraceContext] = {}
        self.by_event_id: dict[str, TraceContext] = {}
        start_ns = time.time_ns() if export.exporting() else None
        name = f"{stage} process"
        for msg in msgs:
            headers = msg.headers or {}
            ctx, span = export.start_span(name, from_headers(headers), start_ns)
            self._by_msg[id(msg)] = ctx
            self._spans.append(span)
            event_id = headers.get(MSG_ID)
            if event_id:
                self.by_event_id[event_id] = ctx

    def context_of(self, msg: Msg) -> TraceContext | None:
        return self._by_msg.get(id(msg))

    def end(self, outcomes: Sequence[object] | None) -> None:
        """End the exported spans (nothing to do while not exporting); ``outcomes`` None:
        the batch was handed back."""
        if not any(self._spans):
            return
        end_ns = time.time_ns()
        size = len(self._msgs)
        for index, (msg, span) in enumerate(zip(self._msgs, self._spans, strict=True)):
            if span is None:
                continue
            outcome = "handed_back" if outcomes is None else type(outcomes[index]).__name__
            stream = msg.metadata.stream if msg.reply else ""
            span.set_attributes(
                {
                    "carebus.stage": self._stage,
                    "carebus.outcome": outcome.lower(),
                    "messaging.system": "nats",
                    "messaging.destination.name": stream,
                    "messaging.batch.message_count": size,
                }
            )
            span.end(end_ns)
