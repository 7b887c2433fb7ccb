"""Prometheus metrics of the ERP poster (no journal ids or other identifiers in labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from carebus_shared.runtime.metrics import CachedLabels


class PosterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.journals = Counter(
            "carebus_erp_poster_journals_total",
            "Journal requests handled, by outcome (posted, duplicate, rejected, retried)",
            ["connector", "outcome"],
            registry=registry,
        )
        self._journals = CachedLabels(self.journals)
        self.erp_requests = Counter(
            "carebus_erp_poster_erp_requests_total",
            "HTTP requests to the ERP, by operation and result (2xx, 4xx, 429, 5xx, timeout, "
            "connection_error)",
            ["operation", "result"],
            registry=registry,
        )
        self.erp_request_seconds = Histogram(
            "carebus_erp_poster_erp_request_seconds",
            "Duration of one HTTP request to the ERP",
            ["operation"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.rate_limit_wait_seconds = Counter(
            "carebus_erp_poster_rate_limit_wait_seconds_total",
            "Time spent waiting for the ERP's rate limit or Retry-After",
            registry=registry,
        )
        self.circuit_state = Gauge(
            "carebus_erp_poster_circuit_state",
            "ERP circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=registry,
        )
        self.circuit_opened = Counter(
            "carebus_erp_poster_circuit_opened_total",
            "Times the ERP circuit breaker opened",
            registry=registry,
        )
        self.pending = Gauge(
            "carebus_erp_poster_pending_journals",
            "Journals the ERP accepted and has not confirmed or rejected yet",
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "carebus_erp_poster_oldest_pending_age_seconds",
            "Age of the oldest journal awaiting the ERP's confirmation",
            registry=registry,
        )
        self.confirmations = Counter(
            "carebus_erp_poster_confirmations_total",
            "Pending journals decided by the ERP, by outcome (confirmed, rejected)",
            ["outcome"],
            registry=registry,
        )

    def count_journal(self, connector: str, outcome: str) -> None:
        self._journals.labels(connector, outcome).inc()
