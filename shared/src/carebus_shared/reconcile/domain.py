"""Reconciling scheduling, billing and the ledger for a site and day: pure, no I/O.

The readers build three views of everything they read (visits, billing items, journals) and
an index of the exception records that can explain a gap; :func:`reconcile` compares them per
(site, day) and returns the figures side by side and every difference with the ids that
explain it. A difference is *explained* by an exception record (open, or discarded by a
person) about the same event, entity or journal, or by being recent (still in flight);
everything else is *unexplained*, and a run with anything unexplained fails
(docs/decisions/014).

Links, all by ids the contracts carry:

* charge → visit: the charge's ``appointment_id``, else its ``encounter_id`` when that is an
  appointment id, else the same patient at the same site on the same day (the sources in use
  send a visit number the scheduling feed does not know). The patient reference is used for
  that link only; it is never reported.
* source event → journal: ``source_event_ids`` of the journal requests (the mapper names the
  original scheduling or billing event of every journal).
* journal → ledger: its ledger entries (each a posting, document ``GL-…``) or the cloud ERP's
  acceptance, and its confirmation state.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

# Kinds of difference (also the metric label values: a closed set).
COMPLETED_WITHOUT_CHARGE: Final = "completed_without_charge"
CHARGED_WITHOUT_POSTING: Final = "charged_without_posting"
PAID_WITHOUT_POSTING: Final = "paid_without_posting"
ADJUSTED_WITHOUT_POSTING: Final = "adjusted_without_posting"
POSTED_WITHOUT_CONFIRMATION: Final = "posted_without_confirmation"
POSTED_TWICE: Final = "posted_twice"
KINDS: Final = (
    COMPLETED_WITHOUT_CHARGE,
    CHARGED_WITHOUT_POSTING,
    PAID_WITHOUT_POSTING,
    ADJUSTED_WITHOUT_POSTING,
    POSTED_WITHOUT_CONFIRMATION,
    POSTED_TWICE,
)

# Billing items.
CHARGE: Final = "charge"
REVERSAL: Final = "charge_reversal"
PAYMENT: Final = "payment"
ADJUSTMENT: Final = "adjustment"
CLAIM: Final = "claim"
APPOINTMENT: Final = "appointment"
JOURNAL: Final = "journal"

# What a billing item that did not reach the ledger is called; claims post statistics only
# and are counted, not checked.
_NOT_POSTED: Final = {
    CHARGE: CHARGED_WITHOUT_POSTING,
    REVERSAL: CHARGED_WITHOUT_POSTING,
    PAYMENT: PAID_WITHOUT_POSTING,
    ADJUSTMENT: ADJUSTED_WITHOUT_POSTING,
}

# Rows of the figures, in the order they are shown.
VISITS: Final = "visits completed"
ROWS: Final = (VISITS, "charges", "charge reversals", "payments", "adjustments", "claims")
_ROW_OF: Final = {
    CHARGE: "charges",
    REVERSAL: "charge reversals",
    PAYMENT: "payments",
    ADJUSTMENT: "adjustments",
    CLAIM: "claims",
}

CONFIRMED: Final = "confirmed"


# -- the views ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Visit:
    """An appointment as its newest event read says."""

    appointment_id: str
    site: str
    day: dt.date  # the slot's local date
    status: str
    event_id: str  # of the newest event
    recorded_at: dt.datetime  # of the newest event
    patient_ref: str = field(repr=False)  # links charges; never reported
    entity: str = ""  # "SCHEDULING:<appointment id>": what the validator parks by
    event_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BillingItem:
    kind: str  # CHARGE, REVERSAL, PAYMENT, ADJUSTMENT, CLAIM
    entity_id: str  # charge, payment, adjustment or claim id
    event_id: str
    site: str
    day: dt.date  # the date it posts on: service date, received on, occurred, adjudicated
    amount_minor: int
    currency: str
    recorded_at: dt.datetime
    entity: str = ""  # "BILLING:<entity key>"
    appointment_id: str | None = None
    encounter_id: str | None = None
    patient_ref: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Posting:
    """One booking of a journal: a ledger entry, or the cloud ERP's acceptance."""

    document: str
    posted_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Journal:
    journal_id: str
    site: str
    day: dt.date  # posting date
    source_event_ids: tuple[str, ...] = ()
    postings: tuple[Posting, ...] = ()
    status: str | None = None  # pending | confirmed | rejected; None: no state kept
    # (account, currency) → (debit, credit), over all its postings.
    accounts: Mapping[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExceptionNote:
    """An exception record that can explain a gap, and what it is about."""

    record_id: int
    reason: str
    status: str  # open | discarded
    event_ids: frozenset[str] = frozenset()
    entities: frozenset[str] = frozenset()
    journal_ids: frozenset[str] = frozenset()

    @property
    def text(self) -> str:
        return f"exception {self.record_id}: {self.reason} ({self.status})"


@dataclass(frozen=True)
class Views:
    visits: Sequence[Visit] = ()
    billing: Sequence[BillingItem] = ()
    journals: Sequence[Journal] = ()
    exceptions: Sequence[ExceptionNote] = ()


@dataclass(frozen=True)
class Timing:
    """What counts as still in flight at ``now``: anything more recent than ``settle``
    (pipeline and confirmation), a completed visit more recent than ``charge_lag``."""

    now: dt.datetime
    settle: dt.timedelta = dt.timedelta(minutes=15)
    charge_lag: dt.timedelta = dt.timedelta(days=1)


# -- the result -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    site: str
    day: dt.date
    entity: str  # appointment, charge, charge_reversal, payment, adjustment, journal
    entity_id: str
    journal_ids: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    amount_minor: int | None = None
    currency: str | None = None
    exception_id: int | None = None
    explanation: str | None = None  # None: unexplained

    @property
    def explained(self) -> bool:
        return self.explanation is not None


@dataclass
class Figure:
    """A count and its sums per currency: what the source holds, what of it posted, and
    what of that the ERP confirmed."""

    count: int = 0
    sums: dict[str, int] = field(default_factory=dict)
    posted: int = 0
    posted_sums: dict[str, int] = field(default_factory=dict)
    confirmed: int = 0
    matched: int | None = None  # visits: those with a charge


@dataclass
class SiteDay:
    site: str
    day: dt.date
    figures: dict[str, Figure] = field(default_factory=lambda: {row: Figure() for row in ROWS})
    journals: int = 0
    postings: int = 0
    confirmed: int = 0
    # (account, currency) → [debit, credit] of the ledger for the site and day.
    accounts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)

    @property
    def unexplained(self) -> int:
        return sum(1 for d in self.differences if not d.explained)

    @property
    def explained(self) -> int:
        return len(self.differences) - self.unexplained


# -- comparing ------------------------------------------------------------------------------
class _Explanations:
    def __init__(self, notes: Iterable[ExceptionNote]) -> None:
        self._by: dict[str, ExceptionNote] = {}
        # The lowest record id wins: the first failure is the one to fix.
        for note in sorted(notes, key=lambda n: n.record_id, reverse=True):
            for key in note.event_ids:
                self._by[f"e:{key}"] = note
            for key in note.entities:
                self._by[f"n:{key}"] = note
            for key in note.journal_ids:
                self._by[f"j:{key}"] = note

    def find(
        self,
        event_ids: Iterable[str] = (),
        entities: Iterable[str] = (),
        journal_ids: Iterable[str] = (),
    ) -> ExceptionNote | None:
        keys = [
            *(f"e:{k}" for k in event_ids),
            *(f"n:{k}" for k in entities if k),
            *(f"j:{k}" for k in journal_ids),
        ]
        found = [self._by[k] for k in keys if k in self._by]
        return min(found, key=lambda n: n.record_id) if found else None


def _ago(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


class _Index:
    """Everything :func:`reconcile` looks up, indexed once for all sites and days."""

    def __init__(self, views: Views, timing: Timing) -> None:
        self.timing = timing
        self.explanations = _Explanations(views.exceptions)
        self.journals_of: dict[str, list[Journal]] = defaultdict(list)
        for journal in views.journals:
            for event_id in journal.source_event_ids:
                self.journals_of[event_id].append(journal)
        self.charged: set[tuple[str, ...]] = set()
        for item in views.billing:
            if item.kind != CHARGE:
                continue
            for link in (item.appointment_id, item.encounter_id):
                if link:
                    self.charged.add(("id", link))
            if item.patient_ref:
                self.charged.add(("visit", item.site, item.patient_ref, item.day.isoformat()))
        self.source_of: dict[str, tuple[str, str]] = {}
        for visit in views.visits:
            for event_id in visit.event_ids or {visit.event_id}:
                self.source_of[event_id] = (APPOINTMENT, visit.appointment_id)
        for item in views.billing:
            self.source_of[item.event_id] = (item.kind, item.entity_id)

    def has_charge(self, visit: Visit) -> bool:
        return ("id", visit.appointment_id) in self.charged or (
            "visit",
            visit.site,
            visit.patient_ref,
            visit.day.isoformat(),
        ) in self.charged

    def in_flight(self, since: dt.datetime, within: dt.timedelta, what: str) -> str | None:
        age = self.timing.now - since
        return f"{what} {_ago(age)} ago (in flight)" if age < within else None


def _posted(journals: Iterable[Journal]) -> list[Journal]:
    return [j for j in journals if j.postings]


def _visit_difference(ctx: _Index, visit: Visit) -> Difference | None:
    if ctx.has_charge(visit):
        return None
    note = ctx.explanations.find(visit.event_ids or {visit.event_id}, [visit.entity])
    explanation = note.text if note else None
    if explanation is None:
        explanation = ctx.in_flight(visit.recorded_at, ctx.timing.charge_lag, "completed")
    return Difference(
        COMPLETED_WITHOUT_CHARGE, visit.site, visit.day, APPOINTMENT, visit.appointment_id,
        exception_id=note.record_id if note else None, explanation=explanation,
    )  # fmt: skip


def _item_difference(ctx: _Index, item: BillingItem, journals: list[Journal]) -> Difference | None:
    kind = _NOT_POSTED.get(item.kind)
    # A zero amount posts nothing (the mapper publishes no journal whose lines are all zero).
    if kind is None or item.amount_minor == 0 or _posted(journals):
        return None
    journal_ids = [j.journal_id for j in journals]
    note = ctx.explanations.find([item.event_id], [item.entity], journal_ids)
    explanation = note.text if note else None
    if explanation is None:
        explanation = ctx.in_flight(item.recorded_at, ctx.timing.settle, "recorded")
    return Difference(
        kind, item.site, item.day, item.kind, item.entity_id, tuple(journal_ids),
        amount_minor=item.amount_minor, currency=item.currency,
        exception_id=note.record_id if note else None, explanation=explanation,
    )  # fmt: skip


def _source(ctx: _Index, journal: Journal) -> tuple[str, str]:
    for event_id in journal.source_event_ids:
        if event_id in ctx.source_of:
            return ctx.source_of[event_id]
    return JOURNAL, journal.journal_id


def _journal_differences(ctx: _Index, journal: Journal) -> list[Difference]:
    found = []
    entity, entity_id = _source(ctx, journal)
    # Posted twice: more than one booking of one journal, or of one source event through
    # journals with different ids (a replay under a new rule-set version). Reported once,
    # with the first journal of the source.
    group = {journal.journal_id: journal}
    for event_id in journal.source_event_ids:
        group.update((j.journal_id, j) for j in ctx.journals_of.get(event_id, ()))
    booked = sorted(_posted(group.values()), key=lambda j: (j.day, j.journal_id))
    postings = [p for j in booked for p in j.postings]
    if len(postings) > 1 and booked[0] is journal:
        found.append(
            Difference(
                POSTED_TWICE,
                journal.site,
                journal.day,
                entity,
                entity_id,
                tuple(j.journal_id for j in booked),
                tuple(sorted(p.document for p in postings)),
            )
        )
    if journal.postings and journal.status != CONFIRMED:
        note = ctx.explanations.find(journal_ids=[journal.journal_id])
        explanation = note.text if note else None
        if explanation is None:
            last = max(p.posted_at for p in journal.postings)
            explanation = ctx.in_flight(last, ctx.timing.settle, "posted")
        found.append(
            Difference(
                POSTED_WITHOUT_CONFIRMATION,
                journal.site,
                journal.day,
                entity,
                entity_id,
                (journal.journal_id,),
                tuple(p.document for p in journal.postings),
                exception_id=note.record_id if note else None,
                explanation=explanation,
            )
        )
    return found


def _count_visit(ctx: _Index, figure: Figure, visit: Visit) -> None:
    figure.count += 1
    figure.matched = (figure.matched or 0) + ctx.has_charge(visit)
    journals = _posted(ctx.journals_of.get(visit.event_id, ()))
    figure.posted += bool(journals)
    figure.confirmed += any(j.status == CONFIRMED for j in journals)


def _add(sums: dict[str, int], currency: str, amount: int) -> None:
    sums[currency] = sums.get(currency, 0) + amount


def _count_item(figure: Figure, item: BillingItem, journals: list[Journal]) -> None:
    figure.count += 1
    _add(figure.sums, item.currency, item.amount_minor)
    if _posted(journals):
        figure.posted += 1
        _add(figure.posted_sums, item.currency, item.amount_minor)
        figure.confirmed += any(j.status == CONFIRMED for j in journals)


def _count_journal(result: SiteDay, journal: Journal) -> None:
    result.journals += 1
    result.postings += len(journal.postings)
    result.confirmed += bool(journal.postings) and journal.status == CONFIRMED
    for key, (debit, credit) in journal.accounts.items():
        sums = result.accounts.setdefault(key, [0, 0])
        sums[0] += debit
        sums[1] += credit


def reconcile(
    views: Views,
    days: Sequence[dt.date],
    timing: Timing,
    sites: Iterable[str] | None = None,
) -> list[SiteDay]:
    """Per (site, day) of ``days``: the figures and the differences, sites in name order.

    ``sites`` limits the result; by default every site with anything on those days."""
    ctx = _Index(views, timing)
    wanted = set(days)
    only = set(sites) if sites is not None else None
    results: dict[tuple[str, dt.date], SiteDay] = {}

    def at(site: str, day: dt.date) -> SiteDay | None:
        if day not in wanted or (only is not None and site not in only):
            return None
        return results.setdefault((site, day), SiteDay(site, day))

    for visit in views.visits:
        result = at(visit.site, visit.day)
        if result is None or visit.status != "completed":
            continue
        _count_visit(ctx, result.figures[VISITS], visit)
        difference = _visit_difference(ctx, visit)
        if difference is not None:
            result.differences.append(difference)
    for item in views.billing:
        result = at(item.site, item.day)
        if result is None:
            continue
        journals = ctx.journals_of.get(item.event_id, [])
        _count_item(result.figures[_ROW_OF[item.kind]], item, journals)
        difference = _item_difference(ctx, item, journals)
        if difference is not None:
            result.differences.append(difference)
    for journal in sorted(views.journals, key=lambda j: (j.day, j.journal_id)):
        result = at(journal.site, journal.day)
        if result is None:
            continue
        _count_journal(result, journal)
        result.differences.extend(_journal_differences(ctx, journal))
    for result in results.values():
        result.differences.sort(key=lambda d: (d.explained, d.kind, d.entity_id))
    return [results[key] for key in sorted(results)]
