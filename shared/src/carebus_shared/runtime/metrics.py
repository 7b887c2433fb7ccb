"""Stage metrics shared by every consuming service (no identifiers in labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
        self.batch_seconds = Histogram(
            "carebus_stage_batch_seconds",
            "Time to handle, publish and ack one batch",
            ["stage"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
