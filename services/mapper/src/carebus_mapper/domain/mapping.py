"""Mapping one event: find the rule, build the journal, or say precisely why not.

The outcome is one of
- :class:`Mapped`: a balanced journal and the rule that produced it;
- :class:`NoJournal`: a rule matched and deliberately posts nothing (``journal = false``),
  or every amount was zero;
- :class:`Unmapped`: no rule matched, an amount or a dimension the rule needs is missing,
  or currencies were mixed — the event becomes a ``mapping`` exception, never a silent drop.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from carebus_contracts.erp import JournalEntryRequested
from carebus_mapper.domain.amounts import UnitMismatch
from carebus_mapper.domain.expressions import MissingAmount
from carebus_mapper.domain.facts import Facts
from carebus_mapper.domain.journal import (
    LineDraft,
    MissingDimension,
    UnitlessAmount,
    build_journal,
    mirrored,
    rule_lines,
)
from carebus_mapper.domain.rules import Rule, RuleSet


class Mapped(msgspec.Struct, frozen=True):
    rule: Rule
    journal: JournalEntryRequested


class NoJournal(msgspec.Struct, frozen=True):
    rule: Rule
    reason: str  # no_financial_effect | zero_amount


class Unmapped(msgspec.Struct, frozen=True):
    reason: str
    message: str
    rule: Rule | None = None
    path: str | None = None
    offending_value: str | None = None


Outcome = Mapped | NoJournal | Unmapped


def first_match(rules: RuleSet, event: str, facts: Facts) -> Rule | None:
    for rule in rules.candidates(event):
        if rule.matches(facts.selectors):
            return rule
    return None


def _lines(rules: RuleSet, rule: Rule, facts: Facts) -> list[LineDraft] | Unmapped | None:
    """The rule's lines; None for a deliberate no-journal; Unmapped when it cannot map."""
    if rule.mirror is None:
        return rule_lines(rule, facts) if rule.journal else None
    target = first_match(rules, rule.mirror, facts)
    if target is None:
        return Unmapped(
            "no_rule_to_mirror",
            f"rule {rule.id} mirrors {rule.mirror}, but no {rule.mirror} rule matches this event",
            rule=rule,
        )
    if not target.journal:
        return None
    return mirrored(rule_lines(target, facts))


def map_facts(rules: RuleSet, facts: Facts, recorded_at: dt.datetime) -> Outcome:
    rule = first_match(rules, facts.event, facts)
    if rule is None:
        return Unmapped(
            "no_matching_rule",
            f"no rule of rule set {rules.version} matches this {facts.event} event "
            "(selectors: "
            + ", ".join(f"{k}={v}" for k, v in facts.selectors.items() if v is not None)
            + ")",
            path="$.event_type",
            offending_value=facts.event,
        )
    try:
        lines = _lines(rules, rule, facts)
    except MissingDimension as exc:
        return Unmapped(
            "missing_dimension",
            f"rule {rule.id}: {exc}; fix the master data and re-drive",
            rule=rule,
            path=exc.path,
        )
    except MissingAmount as exc:
        return Unmapped(
            "missing_amount",
            f"rule {rule.id} needs the amount {exc.name!r}, which this event does not have"
            + (" (no fee schedule entry for the service)" if exc.name == "expected_fee" else ""),
            rule=rule,
            path="$.enrichment.service_code" if exc.name == "expected_fee" else None,
            offending_value=facts.selectors.get("service"),
        )
    except (UnitMismatch, UnitlessAmount) as exc:
        return Unmapped("mixed_currency", f"rule {rule.id}: {exc}", rule=rule)
    if isinstance(lines, Unmapped):
        return lines
    if lines is None:
        return NoJournal(rule, "no_financial_effect")
    if not lines:
        return NoJournal(rule, "zero_amount")
    journal = build_journal(rules, rule, facts, lines, recorded_at)
    problems = journal.problems()
    if problems:  # impossible by construction; kept as the last guard before the ERP
        return Unmapped("unbalanced_journal", f"rule {rule.id}: {'; '.join(problems)}", rule=rule)
    return Mapped(rule, journal)
