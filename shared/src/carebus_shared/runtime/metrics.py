"""Stage metrics shared by every consuming service (no identifiers in labels)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


def new_registry() -> CollectorRegistry:
    """A service's registry, without prometheus-client's ``_created`` series: one more
    series beside every counter and histogram that no dashboard or alert of the suite reads
    (a process-wide switch, so every registry of the process loses them)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    return CollectorRegistry()


class CachedLabels(Generic[M]):
    """A labelled metric's children, each looked up once: on a per-message path
    ``labels()`` costs more than the increment itself."""

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class StageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "carebus_stage_messages_total",
            "Input messages handled by a stage, by outcome",
            ["stage", "outcome"],
            registry=registry,
        )
        self.published = Counter(
            "carebus_stage_published_total",
            "Messages a stage published with confirmation",
            ["stage"],
            registry=registry,
        )
        self.rejections = Counter(
            "carebus_stage_rejections_total",
            "Inputs rejected into the exception store, by reason",
            ["stage", "reason"],
            registry=registry,
        )
        self.partitions_held = Gauge(
            "carebus_stage_partitions_held",
            "Partitions of an ordered stage whose lease this replica holds",
            ["stage"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "carebus_stage_batch_seconds",
            "Time to handle, publish and ack one batch",
            ["stage"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def watch_partitions(self, stage: str, held: Callable[[], int]) -> None:
        """Report how many of ``stage``'s partitions this replica holds, read at scrape."""
        self.partitions_held.labels(stage).set_function(held)
