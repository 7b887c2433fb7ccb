"""Completed without charge: how long a completed visit may wait for its charge, per site,
and what its work item's exception record says. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from carebus_shared.exceptions.store import ExceptionRecord

REASON = "completed_without_charge"
# A gap found by watching the journeys, not an input that failed (docs/decisions/025).
CATEGORY = "revenue_integrity"
STAGE = "ops-console"
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class ChargeWait:
    """The default wait and each configured site's own (seconds)."""

    default_s: float
    by_site: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, default_h: float, by_site: str) -> ChargeWait:
        """``by_site``: ``SITE01=12,SITE02=48`` (hours); refuses what it cannot read."""
        sites: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in by_site.split(","))):
            site, sep, hours = item.partition("=")
            if not sep or not site.strip():
                raise ValueError("each site's wait is written SITE=hours")
            value = float(hours)
            if value < 0:
                raise ValueError("a site's wait in hours must not be negative")
            sites[site.strip()] = value * HOUR_S
        return cls(default_h * HOUR_S, sites)

    def arrays(self) -> tuple[list[str], list[float]]:
        """The per-site waits as two parallel arrays (one SQL parameter each)."""
        sites = sorted(self.by_site)
        return sites, [self.by_site[site] for site in sites]

    def seconds(self, site: str) -> float:
        return self.by_site.get(site, self.default_s)


@dataclass(frozen=True, slots=True)
class Overdue:
    """A completed appointment no charge named within its site's wait."""

    appointment_id: str
    site: str
    completion_event_id: str


def record_for(item: Overdue, wait: ChargeWait) -> ExceptionRecord:
    hours = wait.seconds(item.site) / HOUR_S
    return ExceptionRecord(
        # One record per appointment, however often the sweep sees it.
        dedupe_key=f"{REASON}:{item.appointment_id}",
        stage=STAGE,
        category=CATEGORY,
        reason=REASON,
        message=(
            f"appointment completed and no charge names it after {hours:g} h "
            "(its site's wait); resolved when a charge arrives"
        ),
        source="ops-console",
        site=item.site,
        event_id=item.completion_event_id,
    )
