"""What an adapter does with what it receives: publish canonical events, or keep the input.

An adapter answers its sender (MLLP ACK, HTTP status) only after ``publish`` returned, i.e.
after JetStream confirmed every event; if it raises, the adapter must not acknowledge, and
the sender's retry is harmless because event ids are derived from the source.
``reject`` keeps the raw input with its reason in the exception store, for a person to fix
and re-drive; recording the same bad input twice keeps one record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from nats.js import api
from prometheus_client import Counter

from carebus_contracts import Event
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.publish import (
    ConfirmedStream,
    Tally,
    outgoing_for,
    publish_confirmed,
)
from carebus_shared.runtime.metrics import CachedLabels
from carebus_shared.runtime.service import ServiceRuntime


class EventStream(Protocol):
    """A large input's events, published as they are made: ``publish`` waits only while
    too many are unconfirmed, ``confirmed`` until every one is (raises PublishFailed)."""

    async def publish(self, events: Iterable[Event], *, inputs: int = 0) -> None: ...

    async def confirmed(self) -> Tally: ...


class Sink(Protocol):
    """What an adapter's handlers need of :class:`Intake` (a unit test hands them a fake)."""

    def stream(self, source: str) -> EventStream: ...

    async def publish(
        self, source: str, events: Sequence[Event], *, inputs: int = 1
    ) -> list[api.PubAck]: ...

    async def reject(
        self,
        *,
        raw: bytes,
        source: str,
        category: str,
        reason: str,
        message: str,
        content_type: str,
        site: str | None = None,
        path: str | None = None,
        offending_value: str | None = None,
        event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None: ...


class Intake:
    def __init__(self, runtime: ServiceRuntime, stage: str, publish_timeout_s: float = 10.0):
        self._runtime = runtime
        self.stage = stage
        self._timeout = publish_timeout_s
        self._inputs = Counter(
            "carebus_intake_inputs_total",
            "Inputs received by an adapter, by source and outcome",
            ["source", "outcome"],
            registry=runtime.registry,
        )
        self._events = Counter(
            "carebus_intake_events_published_total",
            "Canonical events published with confirmation, by source",
            ["source"],
            registry=runtime.registry,
        )
        self._inputs_by_label = CachedLabels(self._inputs)
        self._events_by_source = CachedLabels(self._events)

    async def publish(
        self, source: str, events: Sequence[Event], *, inputs: int = 1
    ) -> list[api.PubAck]:
        """Publish ``events`` and wait for every JetStream ack (raises PublishFailed).

        ``inputs`` is how many source inputs the events came from (a file chunk: its rows);
        the acks tell duplicates (``ack.duplicate``) from new events.
        """
        outgoing = [outgoing_for(e) for e in events]
        acks = await publish_confirmed(self._runtime.js, outgoing, self._timeout)
        self._inputs_by_label.labels(source, "accepted").inc(inputs)
        self._events_by_source.labels(source).inc(len(outgoing))
        return acks

    def stream(self, source: str) -> EventStream:
        """Publishing a file's events with a window of unconfirmed publishes (see
        :class:`ConfirmedStream`); the sender is answered only after ``confirmed()``."""
        return _IntakeStream(
            self, source, ConfirmedStream(self._runtime.js, timeout_s=self._timeout)
        )

    async def reject(
        self,
        *,
        raw: bytes,
        source: str,
        category: str,
        reason: str,
        message: str,
        content_type: str,
        site: str | None = None,
        path: str | None = None,
        offending_value: str | None = None,
        event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Keep ``raw`` in the exception store with its reason (once per input and reason).

        ``headers`` keep what re-processing ``raw`` needs besides its bytes (e.g. the column
        mapping a CSV row was read with).
        """
        digest = hashlib.sha256(raw).hexdigest()
        record = ExceptionRecord(
            dedupe_key=f"{self.stage}:{source}:{digest}:{reason}",
            stage=self.stage,
            category=category,
            reason=reason,
            message=message,
            source=source,
            site=site,
            event_id=event_id,
            content_type=content_type,
            raw=raw,
            path=path,
            offending_value=offending_value,
            headers=dict(headers or {}),
        )
        await self._runtime.record_exceptions([record])
        self._inputs_by_label.labels(source, "rejected").inc()


class _IntakeStream:
    def __init__(self, intake: Intake, source: str, stream: ConfirmedStream) -> None:
        self._intake, self._source, self._stream = intake, source, stream
        self._inputs = 0
        self._counted = 0  # events already counted in the metrics

    async def publish(self, events: Iterable[Event], *, inputs: int = 0) -> None:
        await self._stream.publish(outgoing_for(e) for e in events)
        self._inputs += inputs

    async def confirmed(self) -> Tally:
        tally = await self._stream.confirmed()
        intake = self._intake
        intake._inputs_by_label.labels(self._source, "accepted").inc(self._inputs)
        confirmed = tally.published + tally.duplicates
        intake._events_by_source.labels(self._source).inc(confirmed - self._counted)
        self._inputs, self._counted = 0, confirmed
        return tally
