"""The business figures: recomputed from the tracker tables every few seconds for the
gauges, and on demand for `GET /v1/sites`."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec

from carebus_ops.adapters import figures_store
from carebus_ops.adapters.figures_store import Thresholds
from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.domain.figures import Backlog, Figures


class BacklogBody(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    """Items past the threshold."""
    oldest_age_seconds: float
    """The oldest item's age, past the threshold or not (0: none)."""


class SiteBody(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    registered: bool
    completed_without_charge: BacklogBody
    charges_unposted: BacklogBody
    journals_unconfirmed: BacklogBody
    quarantined: int
    exceptions_open: int


class SitesBody(msgspec.Struct, frozen=True, kw_only=True):
    thresholds_hours: dict[str, float]
    registered: list[str]
    sites: list[SiteBody]


def _backlog(b: Backlog) -> BacklogBody:
    return BacklogBody(count=b.count, oldest_age_seconds=round(b.oldest_age_s, 3))


class OpsFigures:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        metrics: OpsMetrics,
        thresholds: Thresholds,
        configured_sites: frozenset[str],
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._thresholds = thresholds
        self._configured = configured_sites

    async def compute(self) -> tuple[Figures, frozenset[str]]:
        async with self._pool().acquire() as conn:
            registered = self._configured | await figures_store.registered_sites(conn)
            return await figures_store.figures(conn, self._thresholds), registered

    async def refresh(self) -> None:
        """Recompute the business gauges (a background step)."""
        figures, registered = await self.compute()
        self._metrics.snapshots.figures = figures
        self._metrics.snapshots.registered = registered

    async def sites(self) -> SitesBody:
        figures, registered = await self.compute()
        t = self._thresholds
        return SitesBody(
            thresholds_hours={
                "completed_without_charge": t.completed_without_charge_s / 3600,
                "charges_unposted": t.charges_unposted_s / 3600,
                "journals_unconfirmed": t.journals_unconfirmed_s / 3600,
            },
            registered=sorted(registered),
            sites=[
                SiteBody(
                    site=s.site,
                    registered=s.site in registered,
                    completed_without_charge=_backlog(s.completed_without_charge),
                    charges_unposted=_backlog(s.charges_unposted),
                    journals_unconfirmed=_backlog(s.journals_unconfirmed),
                    quarantined=s.quarantined,
                    exceptions_open=s.exceptions_open,
                )
                for s in sorted(figures.sites.values(), key=lambda s: s.site)
            ],
        )
