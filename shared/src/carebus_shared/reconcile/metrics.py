"""The reconciliation's Prometheus metrics, served by ``carebus reconcile --every``.

Labels are bounded: ``site`` is a site master data registers (a location's site code), every
other site is ``_other``; ``kind`` is one of the difference kinds; ``state`` explained or
unexplained. No entity id is ever a label: the ids are in the kept report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from carebus_shared.reconcile.domain import KINDS, SiteDay

OTHER_SITE: Final = "_other"
STATES: Final = ("unexplained", "explained")


def site_label(site: str, registered: frozenset[str]) -> str:
    return site if site in registered else OTHER_SITE


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "carebus_reconcile_runs_total",
            "Reconciliation runs, by outcome: clean, unexplained (differences nobody explains), "
            "failed (could not read or store)",
            ["outcome"],
            registry=registry,
        )
        self.differences = Gauge(
            "carebus_reconcile_differences",
            "Differences the latest run found over the days it reconciled, by site, kind and state",
            ["site", "kind", "state"],
            registry=registry,
        )
        self.site_days = Gauge(
            "carebus_reconcile_site_days",
            "Site-days the latest run reconciled",
            registry=registry,
        )
        self.last_run = Gauge(
            "carebus_reconcile_last_run_timestamp_seconds",
            "When the latest run finished, successful or not",
            registry=registry,
        )
        self.last_success = Gauge(
            "carebus_reconcile_last_success_timestamp_seconds",
            "When the latest run that read and stored everything finished",
            registry=registry,
        )
        self.duration = Gauge(
            "carebus_reconcile_last_run_duration_seconds",
            "How long the latest run took",
            registry=registry,
        )
        for outcome in ("clean", "unexplained", "failed"):
            self.runs.labels(outcome)

    def succeeded(
        self,
        results: Sequence[SiteDay],
        registered: frozenset[str],
        finished_at: float,
        seconds: float,
    ) -> None:
        counts = dict.fromkeys(_series(registered), 0)
        for result in results:
            site = site_label(result.site, registered)
            for d in result.differences:
                key = (site, d.kind, STATES[d.explained])
                counts[key] = counts.get(key, 0) + 1
        self.differences.clear()
        for (site, kind, state), n in counts.items():
            self.differences.labels(site, kind, state).set(n)
        self.site_days.set(len(results))
        self.runs.labels("unexplained" if any(r.unexplained for r in results) else "clean").inc()
        self.last_run.set(finished_at)
        self.last_success.set(finished_at)
        self.duration.set(seconds)

    def failed(self, finished_at: float, seconds: float) -> None:
        self.runs.labels("failed").inc()
        self.last_run.set(finished_at)
        self.duration.set(seconds)


def _series(registered: Iterable[str]) -> list[tuple[str, str, str]]:
    """Every series, so that a difference that went away reads 0 rather than vanishing."""
    sites = [*sorted(registered), OTHER_SITE]
    return [(site, kind, state) for site in sites for kind in KINDS for state in STATES]
