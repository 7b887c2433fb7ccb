"""The ops console's Prometheus metrics (names agreed for issue #15; no identifiers in any
label; ``site`` bounded to registered sites, ``_unknown`` and ``_other``).

The business and JetStream figures are snapshots the background loops compute; a collector
exports the latest snapshot at each scrape, so a label set that disappears (an exception
resolved) leaves no stale series behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from carebus_ops.domain import figures as f


@dataclass(frozen=True, slots=True)
class ConsumerState:
    stream: str
    consumer: str
    pending: int
    ack_pending: int
    redelivered: int
    oldest_unacked_age_s: float
    tracker: bool  # one of the ops console's own durables


@dataclass(frozen=True, slots=True)
class StreamState:
    stream: str
    messages: int
    bytes: int


@dataclass
class JetStreamState:
    consumers: list[ConsumerState] = field(default_factory=list)
    streams: list[StreamState] = field(default_factory=list)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class _Snapshots(Collector):
    def __init__(self) -> None:
        self.figures: f.Figures | None = None
        self.registered: frozenset[str] = frozenset()
        self.jetstream: JetStreamState | None = None

    def collect(self) -> Iterator[Metric]:
        if self.figures is not None:
            yield from self._business(self.figures, self.registered)
        if self.jetstream is not None:
            yield from self._jetstream(self.jetstream)

    def _business(self, figures: f.Figures, registered: frozenset[str]) -> Iterator[Metric]:
        sites = f.by_label(figures.sites.values(), registered)
        for name, doc in (
            ("completed_without_charge", "Appointments completed over N hours ago with no charge"),
            ("charges_unposted", "Charges received over N hours ago whose journal is not posted"),
            ("journals_unconfirmed", "Journals requested over N hours ago, not confirmed or "
             "rejected by the ERP"),
        ):  # fmt: skip
            count = _gauge(f"carebus_ops_{name}", doc, ["site"])
            oldest = _gauge(
                f"carebus_ops_{name}_oldest_age_seconds",
                f"Age of the oldest such item, past the threshold or not ({name})",
                ["site"],
            )
            for figure in sites:
                backlog: f.Backlog = getattr(figure, name)
                count.add_metric([figure.site], backlog.count)
                oldest.add_metric([figure.site], backlog.oldest_age_s)
            yield count
            yield oldest
        quarantined = _gauge(
            "carebus_ops_quarantined", "Events parked in quarantine, by reason", ["site", "reason"]
        )
        parked = f.quarantined_by_label(figures.open_exceptions, registered)
        for (site, reason), n in sorted(parked.items()):
            quarantined.add_metric([site, reason], n)
        yield quarantined
        open_ = _gauge(
            "carebus_ops_exceptions_open",
            "Open exception records, by stage and reason category",
            ["site", "stage", "reason"],
        )
        for labels, n in sorted(f.exceptions_by_label(figures.open_exceptions, registered).items()):
            open_.add_metric(list(labels), n)
        yield open_
        oldest_open = _gauge(
            "carebus_ops_exceptions_open_oldest_age_seconds",
            "Age of the oldest open exception record, by stage",
            ["stage"],
        )
        for stage, age in sorted(f.oldest_open_by_stage(figures.open_exceptions).items()):
            oldest_open.add_metric([stage], age)
        yield oldest_open
        # Records are never deleted (a resolution changes their status), so their count
        # only grows: a counter.
        raised = CounterMetricFamily(
            "carebus_ops_exceptions_raised",
            "Exception records raised, by stage and reason category",
            labels=["site", "stage", "reason"],
        )
        for labels, n in sorted(f.exceptions_by_label(figures.all_exceptions, registered).items()):
            raised.add_metric(list(labels), n)
        yield raised
        refused = CounterMetricFamily(
            "carebus_ops_inputs_refused",
            "Inputs an adapter refused (contract category), by stage",
            labels=["stage", "site"],
        )
        for (stage, site), n in sorted(
            f.refused_by_label(figures.all_exceptions, registered).items()
        ):
            refused.add_metric([stage, site], n)
        yield refused

    def _jetstream(self, state: JetStreamState) -> Iterator[Metric]:
        labels = ["stream", "consumer"]
        pending = _gauge(
            "carebus_jetstream_consumer_pending_messages", "Messages not yet delivered", labels
        )
        ack_pending = _gauge(
            "carebus_jetstream_consumer_ack_pending_messages",
            "Messages delivered, not yet acknowledged",
            labels,
        )
        redelivered = _gauge(
            "carebus_jetstream_consumer_redelivered_messages",
            "Messages delivered more than once and not yet acknowledged",
            labels,
        )
        oldest = _gauge(
            "carebus_jetstream_consumer_oldest_unacked_age_seconds",
            "Age of the oldest message the consumer has not acknowledged (0: none)",
            labels,
        )
        lag = _gauge(
            "carebus_ops_tracker_lag_messages",
            "Messages the ops console's tracker has still to read",
            ["stream"],
        )
        for c in state.consumers:
            key = [c.stream, c.consumer]
            pending.add_metric(key, c.pending)
            ack_pending.add_metric(key, c.ack_pending)
            redelivered.add_metric(key, c.redelivered)
            oldest.add_metric(key, c.oldest_unacked_age_s)
            if c.tracker:
                lag.add_metric([c.stream], c.pending + c.ack_pending)
        yield from (pending, ack_pending, redelivered, oldest, lag)
        messages = _gauge("carebus_jetstream_stream_messages", "Messages in the stream", ["stream"])
        size = _gauge("carebus_jetstream_stream_bytes", "Bytes in the stream", ["stream"])
        for s in state.streams:
            messages.add_metric([s.stream], s.messages)
            size.add_metric([s.stream], s.bytes)
        yield messages
        yield size


class OpsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tracker_events = Counter(
            "carebus_ops_tracker_events_total",
            "Events the tracker read, by stream",
            ["stream"],
            registry=registry,
        )
        self.snapshots = _Snapshots()
        registry.register(self.snapshots)
