"""Comparing what two rule sets make of the same events (the shadow replay's report).

Journals are compared by their accounting content — company, posting date and lines
(account, side, amount, currency, dimensions, memo) — not by ids, descriptions or the
rule-set version, which differ between rule sets by design.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from msgspec import structs

from carebus_contracts.erp import FinancialDimensions, JournalEntryRequested, Side

Content = tuple[object, ...]
AccountKey = tuple[str, str]
"""(account, currency)."""


@dataclass(frozen=True)
class Comparison:
    sequence: int
    event_type: str
    source_event_id: str
    current: str
    """The outcome label (journal, no_journal, unmapped …)."""
    candidate: str
    current_journal: JournalEntryRequested | None
    candidate_journal: JournalEntryRequested | None
    current_rule: str | None
    candidate_rule: str | None


def content(journal: JournalEntryRequested | None) -> Content | None:
    if journal is None:
        return None
    lines = tuple(
        (
            line.account,
            line.side.value,
            line.amount.amount_minor,
            line.amount.currency,
            line.dimensions,
            line.memo,
        )
        for line in journal.lines
    )
    return (journal.company, journal.posting_date, lines)


def account_sums(journal: JournalEntryRequested) -> dict[AccountKey, int]:
    """Signed per-account totals: debits positive, credits negative."""
    sums: dict[AccountKey, int] = defaultdict(int)
    for line in journal.lines:
        sign = 1 if line.side is Side.DEBIT else -1
        sums[(line.account, line.amount.currency)] += sign * line.amount.amount_minor
    return sums


@dataclass
class ShadowReport:
    current_version: str
    candidate_version: str
    events: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    current_outcomes: Counter[str] = field(default_factory=Counter)
    candidate_outcomes: Counter[str] = field(default_factory=Counter)
    current_sums: dict[AccountKey, int] = field(default_factory=lambda: defaultdict(int))
    candidate_sums: dict[AccountKey, int] = field(default_factory=lambda: defaultdict(int))
    differing: int = 0
    examples: list[Comparison] = field(default_factory=list)
    max_examples: int = 5

    def add(self, item: Comparison) -> None:
        self.events += 1
        if self.first_sequence is None:
            self.first_sequence = item.sequence
        self.last_sequence = item.sequence
        self.current_outcomes[item.current] += 1
        self.candidate_outcomes[item.candidate] += 1
        for journal, sums in (
            (item.current_journal, self.current_sums),
            (item.candidate_journal, self.candidate_sums),
        ):
            if journal is not None:
                for key, value in account_sums(journal).items():
                    sums[key] += value
        same = item.current == item.candidate and content(item.current_journal) == content(
            item.candidate_journal
        )
        if not same:
            self.differing += 1
            if len(self.examples) < self.max_examples:
                self.examples.append(item)

    def account_deltas(self) -> list[tuple[AccountKey, int, int, int]]:
        """(account, current, candidate, candidate - current) where they differ."""
        keys = sorted(set(self.current_sums) | set(self.candidate_sums))
        rows = []
        for key in keys:
            current, candidate = self.current_sums.get(key, 0), self.candidate_sums.get(key, 0)
            if current != candidate:
                rows.append((key, current, candidate, candidate - current))
        return rows


def _journal_lines(journal: JournalEntryRequested | None, rule: str | None) -> list[str]:
    if journal is None:
        return [f"      (no journal{', rule ' + rule if rule else ''})"]
    out = [f"      {journal.posting_date} {journal.company} rule {rule}: {journal.description}"]
    for line in journal.lines:
        dims = " ".join(f"{k}={v}" for k, v in _dims(line.dimensions).items() if v is not None)
        out.append(
            f"      {line.line_number:>3} {line.account:<8} {line.side.value:<6} "
            f"{line.amount.amount_minor:>12} {line.amount.currency} {dims}".rstrip()
        )
    return out


def _dims(dimensions: FinancialDimensions) -> dict[str, str | None]:
    return {k: str(v) if v is not None else None for k, v in structs.asdict(dimensions).items()}


def render(report: ShadowReport) -> str:
    window = (
        f"sequences {report.first_sequence}..{report.last_sequence}"
        if report.events
        else "an empty window"
    )
    out = [
        f"shadow replay over {report.events} events ({window})",
        f"current rules {report.current_version}  vs  candidate rules {report.candidate_version}",
        "",
        "outcomes                current  candidate",
    ]
    for label in sorted(set(report.current_outcomes) | set(report.candidate_outcomes)):
        out.append(
            f"  {label:<20} {report.current_outcomes[label]:>8} "
            f"{report.candidate_outcomes[label]:>10}"
        )
    out += ["", f"events whose result differs: {report.differing}", ""]
    deltas = report.account_deltas()
    if deltas:
        out.append("sums per account (debit +, credit -) that differ")
        out.append("  account   unit         current      candidate          delta")
        for (account, unit), current, candidate, delta in deltas:
            out.append(f"  {account:<9} {unit:<4} {current:>14} {candidate:>14} {delta:>14}")
    else:
        out.append("sums per account: identical")
    for item in report.examples:
        out += [
            "",
            f"seq {item.sequence} {item.event_type} (source {item.source_event_id}): "
            f"{item.current} -> {item.candidate}",
            "    current:",
            *_journal_lines(item.current_journal, item.current_rule),
            "    candidate:",
            *_journal_lines(item.candidate_journal, item.candidate_rule),
        ]
    return "\n".join(out)


def summary(report: ShadowReport) -> dict[str, object]:
    """The report as plain data (the CLI's ``--json``)."""
    return {
        "current_version": report.current_version,
        "candidate_version": report.candidate_version,
        "events": report.events,
        "first_sequence": report.first_sequence,
        "last_sequence": report.last_sequence,
        "current_outcomes": dict(report.current_outcomes),
        "candidate_outcomes": dict(report.candidate_outcomes),
        "differing": report.differing,
        "account_deltas": [
            {
                "account": account,
                "unit": unit,
                "current": current,
                "candidate": candidate,
                "delta": delta,
            }
            for (account, unit), current, candidate, delta in report.account_deltas()
        ],
        "first_differences": [
            {
                "sequence": item.sequence,
                "event_type": item.event_type,
                "source_event_id": item.source_event_id,
                "current": item.current,
                "candidate": item.candidate,
                "current_rule": item.current_rule,
                "candidate_rule": item.candidate_rule,
            }
            for item in report.examples
        ],
    }
