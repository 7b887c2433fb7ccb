"""The mapper's own metrics (no identifiers in labels: event types and outcomes only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from carebus_shared.runtime.metrics import CachedLabels

OUTCOMES = (
    "journal",  # a journal was published
    "no_journal",  # a rule says the event has no financial effect
    "zero_amount",  # the rule matched but every amount was zero
    "stale",  # an older version of a fenced entity after a newer one: acked, nothing posted
    "duplicate",  # the last applied event of a fenced entity again: already published
    "unmapped",  # a mapping exception (no rule, missing dimension or amount …)
    "invalid",  # did not decode as a validated event (contract exception)
)


class MapperMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "carebus_mapper_events_total",
            "Validated events handled by the mapper, by event type and outcome",
            ["event", "outcome"],
            registry=registry,
        )
        self._events = CachedLabels(self.events)
        self.journal_lines = Counter(
            "carebus_mapper_journal_lines_total",
            "Journal lines published",
            registry=registry,
        )
        self.rule_set = Gauge(
            "carebus_mapper_rule_set_info",
            "The mapping rule set in use (value 1), by version",
            ["version"],
            registry=registry,
        )

    def count_event(self, event: str, outcome: str) -> None:
        self._events.labels(event, outcome).inc()
