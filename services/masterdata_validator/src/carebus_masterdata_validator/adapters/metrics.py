"""The validator's Prometheus metrics (no identifiers or patient data in labels)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge


class ValidatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookup_failures = Counter(
            "carebus_validator_lookup_failures_total",
            "References that did not resolve in flight, by reason and site",
            ["reason", "site"],
            registry=registry,
        )
        self.quarantined = Counter(
            "carebus_validator_quarantined_total",
            "Events parked in quarantine, by first reason (queued_behind: an earlier event of "
            "the same entity is parked)",
            ["reason"],
            registry=registry,
        )
        self.released = Counter(
            "carebus_validator_released_total",
            "Parked events validated and published, by trigger (auto, manual)",
            ["trigger"],
            registry=registry,
        )
        self.discarded = Counter(
            "carebus_validator_discarded_total",
            "Parked events a person discarded",
            registry=registry,
        )
        self.changes = Counter(
            "carebus_validator_masterdata_changes_total",
            "Master-data changes committed through the API, by kind and action",
            ["kind", "action"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "carebus_validator_outbox_published_total",
            "Master-data changes published from the outbox (MASTERDATA stream and KV bucket)",
            registry=registry,
        )
        self.view_records = Gauge(
            "carebus_validator_view_records",
            "Records in the in-memory master-data view",
            registry=registry,
        )
        self.quarantine_size = Gauge(
            "carebus_validator_quarantine_events",
            "Events parked in quarantine",
            registry=registry,
        )
        self._oldest_parked_at: float | None = None
        oldest = Gauge(
            "carebus_validator_quarantine_oldest_age_seconds",
            "Age of the oldest parked event (0 when the quarantine is empty)",
            registry=registry,
        )
        oldest.set_function(self._oldest_age)

    def _oldest_age(self) -> float:
        if self._oldest_parked_at is None:
            return 0.0
        return max(0.0, time.time() - self._oldest_parked_at)

    def set_quarantine(self, size: int, oldest_parked_at: float | None) -> None:
        self.quarantine_size.set(size)
        self._oldest_parked_at = oldest_parked_at
