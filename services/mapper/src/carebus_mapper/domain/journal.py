"""From a matched rule and the event's facts to a balanced journal entry.

Each posting evaluates its amount, then moves it from the credit accounts to the debit
accounts. A negative amount swaps the sides (a negative debit is a credit), which is what
makes a reversal posted with negative amounts the exact mirror of the original. Splits
round by largest remainder, so both sides of a posting sum to the same integer. Lines of
zero are left out; a journal whose every posting is zero is no journal at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import string
from collections.abc import Mapping, Sequence

import msgspec

from carebus_contracts.envelope import Money
from carebus_contracts.erp import FinancialDimensions, JournalEntryRequested, JournalLine, Side
from carebus_contracts.masterdata import PayerClass
from carebus_mapper.domain.amounts import split_largest_remainder
from carebus_mapper.domain.facts import DIMENSION_PATHS, Facts
from carebus_mapper.domain.rules import DimensionSpec, Posting, Rule, RuleSet, Target

STAGE = "mapper"
SOURCE_SYSTEM = "carebus-mapper"


class MissingDimension(LookupError):
    def __init__(self, name: str, account: str) -> None:
        self.name, self.account = name, account
        super().__init__(f"dimension {name} is required on account {account} but unknown")

    @property
    def path(self) -> str:
        return DIMENSION_PATHS[self.name]


class UnitlessAmount(ValueError):
    """An amount expression produced a plain number (possible only via min/max of literals)."""


class LineDraft(msgspec.Struct, frozen=True):
    account: str
    side: Side
    amount: int
    unit: str
    dimensions: FinancialDimensions
    memo: str | None


def idempotency_key(source_event_id: str, rule_set_version: str) -> str:
    """One journal per source event and rule-set version; a redelivery maps to the same key."""
    return f"{source_event_id}|{rule_set_version}"


def journal_id_for(key: str) -> str:
    return "JE-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest().upper()


def event_id_for(key: str) -> str:
    """Same derivation as the shared ``stage_msg_id`` (stage, input, index 0)."""
    digest = hashlib.blake2b(f"{STAGE}\x1f{key}\x1f0".encode(), digest_size=16)
    return digest.hexdigest()


def _dimensions(
    specs: Sequence[DimensionSpec], known: Mapping[str, str | None], account: str
) -> FinancialDimensions:
    values: dict[str, str | PayerClass] = {}
    for spec in specs:
        value = known.get(spec.name)
        if value is None:
            if spec.required:
                raise MissingDimension(spec.name, account)
            continue
        values[spec.name] = PayerClass(value) if spec.name == "payer_class" else value
    return FinancialDimensions(**values)  # type: ignore[arg-type]


def _side_lines(
    targets: Sequence[Target],
    side: Side,
    total: int,
    unit: str,
    specs: Sequence[DimensionSpec],
    facts: Facts,
    memo: str | None,
) -> list[LineDraft]:
    parts = split_largest_remainder(total, [t.weight for t in targets])
    known = facts.dimensions
    return [
        LineDraft(t.account, side, part, unit, _dimensions(specs, known, t.account), memo)
        for t, part in zip(targets, parts, strict=True)
        if part
    ]


def posting_lines(posting: Posting, facts: Facts) -> list[LineDraft]:
    """The lines of one posting: debits then credits, equal totals. May raise MissingAmount,
    UnitMismatch, MissingDimension."""
    value = posting.amount.evaluate(facts.amounts)
    if value.unit is None:
        raise UnitlessAmount(f"{posting.amount.source!r} evaluates to a plain number")
    if value.minor == 0:
        return []
    # A negative amount flips the sides but keeps the line order, so the lines of a
    # negative posting are line for line the mirror of the positive one.
    to, away = (Side.DEBIT, Side.CREDIT) if value.minor > 0 else (Side.CREDIT, Side.DEBIT)
    total = abs(value.minor)
    return [
        *_side_lines(
            posting.debit, to, total, value.unit, posting.debit_dimensions, facts, posting.memo
        ),
        *_side_lines(
            posting.credit, away, total, value.unit, posting.credit_dimensions, facts, posting.memo
        ),
    ]


def rule_lines(rule: Rule, facts: Facts) -> list[LineDraft]:
    return [line for posting in rule.postings for line in posting_lines(posting, facts)]


def mirrored(lines: Sequence[LineDraft]) -> list[LineDraft]:
    """The same lines with debit and credit swapped: what undoes them exactly."""
    flip = {Side.DEBIT: Side.CREDIT, Side.CREDIT: Side.DEBIT}
    return [
        LineDraft(x.account, flip[x.side], x.amount, x.unit, x.dimensions, x.memo) for x in lines
    ]


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> tuple[tuple[str, str | None], ...]:
    """(literal, placeholder) pairs; placeholders were checked at load (plain names only)."""
    return tuple((literal, name) for literal, name, _, _ in string.Formatter().parse(text))


def describe(rule: Rule, facts: Facts) -> str:
    if not rule.description:
        return f"{facts.event} {facts.entity_key}"
    texts = {"event": facts.event, "site": facts.site, "entity_key": facts.entity_key}
    out = []
    for literal, name in _template(rule.description):
        out.append(literal)
        if name is not None:
            out.append(texts.get(name) or facts.selectors.get(name) or "")
    return "".join(out)


def build_journal(
    rules: RuleSet,
    rule: Rule,
    facts: Facts,
    lines: Sequence[LineDraft],
    recorded_at: dt.datetime,
) -> JournalEntryRequested:
    key = idempotency_key(facts.source_event_id, rules.version)
    journal_id = journal_id_for(key)
    return JournalEntryRequested(
        event_id=event_id_for(key),
        occurred_at=facts.occurred_at,
        recorded_at=recorded_at,
        source_system=SOURCE_SYSTEM,
        site=facts.site,
        correlation_id=facts.correlation_id,
        causation_id=facts.validated_event_id,
        entity_key=journal_id,
        entity_version=1,
        journal_id=journal_id,
        company=rules.company_for(facts.site),
        posting_date=facts.dates[rule.posting_date],
        description=describe(rule, facts),
        lines=tuple(
            JournalLine(
                line_number=number,
                account=line.account,
                side=line.side,
                amount=Money(amount_minor=line.amount, currency=line.unit),
                dimensions=line.dimensions,
                memo=line.memo,
            )
            for number, line in enumerate(lines, 1)
        ),
        source_event_ids=(facts.source_event_id,),
        rule_set_version=rules.version,
        mapping_rule=rule.id,
    )
