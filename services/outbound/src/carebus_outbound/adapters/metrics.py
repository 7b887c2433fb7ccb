"""The outbound feeds' Prometheus metrics: by feed, channel and outcome (no identifiers, no
sites: a site's channel is configuration, and the delivery log answers per message)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = ("delivered", "duplicate", "retried", "refused", "exhausted")


class OutboundMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "carebus_outbound_messages_total",
            "Messages a feed handled, by how it ended (duplicate: delivered before).",
            ["feed", "channel", "outcome"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "carebus_outbound_send_seconds",
            "From sending a message to the receiver's answer (or giving up on one).",
            ["feed", "channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.unreachable = Counter(
            "carebus_outbound_receiver_unreachable_total",
            "Sends that got no settling answer, by why (connect, timeout, closed, busy).",
            ["feed", "channel", "why"],
            registry=registry,
        )
