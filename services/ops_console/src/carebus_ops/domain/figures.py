"""The business figures per site, and the bounded labels they are exported under. Pure.

A site label is a registered site (master data's locations, or the configured list), the
events' ``_unknown`` as is, or else ``_other``: a typo in a sender's site never makes a new
time series. Counts add up, oldest ages take the largest, when sites share a label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from carebus_contracts.exceptions import ReasonCategory, Stage
from carebus_contracts.masterdata import EntityKind
from carebus_contracts.subjects import UNKNOWN_SITE

OTHER = "_other"
STAGES = frozenset(stage.value for stage in Stage)
# The store's own categories, raised by no stage's event (docs/decisions/025).
CATEGORIES = frozenset(category.value for category in ReasonCategory) | {
    "revenue_integrity",
    "receiver_rejection",
}
ADAPTER_STAGES = frozenset({Stage.SCHEDULING_ADAPTER.value, Stage.BILLING_ADAPTER.value})
# The validator's reason codes (domain/validation.py there): a bounded label set.
QUARANTINE_REASONS = frozenset(
    {f"{state}_{kind.value}" for state in ("unknown", "inactive") for kind in EntityKind}
    | {"invalid_npi", "queued_behind"}
)


def site_label(site: str | None, registered: frozenset[str]) -> str:
    if not site or site == UNKNOWN_SITE:
        return UNKNOWN_SITE
    return site if site in registered else OTHER


def bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


@dataclass(frozen=True, slots=True)
class Backlog:
    """Items over their threshold, and the age (seconds) of the oldest item at all."""

    count: int = 0
    oldest_age_s: float = 0.0

    def __add__(self, other: Backlog) -> Backlog:
        return Backlog(self.count + other.count, max(self.oldest_age_s, other.oldest_age_s))


@dataclass
class SiteFigures:
    site: str
    completed_without_charge: Backlog = field(default_factory=Backlog)
    charges_unposted: Backlog = field(default_factory=Backlog)
    journals_unconfirmed: Backlog = field(default_factory=Backlog)
    quarantined: int = 0
    exceptions_open: int = 0

    def merge(self, other: SiteFigures) -> None:
        self.completed_without_charge += other.completed_without_charge
        self.charges_unposted += other.charges_unposted
        self.journals_unconfirmed += other.journals_unconfirmed
        self.quarantined += other.quarantined
        self.exceptions_open += other.exceptions_open


@dataclass(frozen=True, slots=True)
class ExceptionCount:
    """Exception records of one (site, stage, category, reason code), from the store."""

    site: str | None
    stage: str | None  # a Stage value, None when the store's stage names none
    category: str
    reason_code: str
    count: int
    oldest_age_s: float = 0.0


@dataclass
class Figures:
    """Everything the business gauges and `GET /v1/sites` show, by raw site."""

    sites: dict[str, SiteFigures] = field(default_factory=dict)
    open_exceptions: list[ExceptionCount] = field(default_factory=list)
    all_exceptions: list[ExceptionCount] = field(default_factory=list)

    def site(self, name: str) -> SiteFigures:
        found = self.sites.get(name)
        if found is None:
            found = self.sites[name] = SiteFigures(name)
        return found


def by_label(figures: Iterable[SiteFigures], registered: frozenset[str]) -> list[SiteFigures]:
    merged: dict[str, SiteFigures] = {}
    for figure in figures:
        label = site_label(figure.site, registered)
        merged.setdefault(label, SiteFigures(label)).merge(figure)
    return [merged[label] for label in sorted(merged)]


def is_quarantine(record: ExceptionCount) -> bool:
    return record.stage == Stage.MASTERDATA_VALIDATOR.value and record.category == "masterdata"


def quarantined_by_label(
    records: Iterable[ExceptionCount], registered: frozenset[str]
) -> Mapping[tuple[str, str], int]:
    """(site label, reason label) → parked events."""
    out: defaultdict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        if is_quarantine(r):
            key = (site_label(r.site, registered), bounded(r.reason_code, QUARANTINE_REASONS))
            out[key] += r.count
    return out


def exceptions_by_label(
    records: Iterable[ExceptionCount], registered: frozenset[str]
) -> Mapping[tuple[str, str, str], int]:
    """(site label, stage, reason category) → records."""
    out: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    for r in records:
        key = (
            site_label(r.site, registered),
            bounded(r.stage or "", STAGES),
            bounded(r.category, CATEGORIES),
        )
        out[key] += r.count
    return out


def oldest_open_by_stage(records: Iterable[ExceptionCount]) -> Mapping[str, float]:
    out: dict[str, float] = {}
    for r in records:
        stage = bounded(r.stage or "", STAGES)
        out[stage] = max(out.get(stage, 0.0), r.oldest_age_s)
    return out


def refused_by_label(
    records: Iterable[ExceptionCount], registered: frozenset[str]
) -> Mapping[tuple[str, str], int]:
    """(stage, site label) → inputs an adapter refused (contract category)."""
    out: defaultdict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        if r.stage in ADAPTER_STAGES and r.category == "contract":
            out[(r.stage, site_label(r.site, registered))] += r.count
    return out
