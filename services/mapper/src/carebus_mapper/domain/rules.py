"""Mapping rules: their file schema (msgspec), validation, and the compiled rule set.

A rule directory holds ``ruleset.toml`` (version, company, fenced entities, fee schedule),
``accounts.toml`` (the chart of accounts) and any number of rule files, each a list of
``[[rule]]`` tables. Compiling checks every rule against what its events carry (named
amounts, dates), the chart of accounts and the expression language, and reports each
problem as ``<file>: rule '<id>': <field>: <what is wrong>``.

A rule says which events it takes (``events`` + ``when`` selectors), and either the
postings of the journal, ``mirror = "<event type>"`` (the exact mirror of what that event
type would post for the same facts), or ``journal = false`` (a deliberate "no financial
effect"). Every posting is one amount moved from credit to debit, possibly split over
several accounts by weight, so each posting — and so each journal — balances per
currency by construction.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

import msgspec

from carebus_contracts.billing import CarcGroup, ClaimStatus, PaymentMethod
from carebus_contracts.masterdata import PayerClass
from carebus_contracts.scheduling import AppointmentStatus
from carebus_mapper.domain import facts as f
from carebus_mapper.domain.expressions import Expression, ExpressionError, parse

RULESET_FILE: Final = "ruleset.toml"
ACCOUNTS_FILE: Final = "accounts.toml"
ENTITIES: Final = frozenset(e.split(".")[0] for e in f.EVENT_TYPES)
NO_PREVIOUS: Final = "none"
"""``previous_status`` of an entity the mapper has not applied an event for yet."""

RuleId = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]*$", max_length=80)]
Unit = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=40)]
Weight = Annotated[int, msgspec.Meta(ge=1)]
# billing.AdjustmentScope values (AdjustmentPosted 1.1); strings, so older contracts still load.
AdjustmentScope = Literal["service_line", "claim", "provider", "account"]
PreviousStatus = Literal[
    "none",
    "requested",
    "booked",
    "cancelled",
    "no_show",
    "checked_in",
    "completed",
    "paid",
    "denied",
    "reversed",
]


class _Doc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class RuleSetDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: Version
    company: Annotated[str, msgspec.Meta(min_length=1)]
    description: str = ""
    companies: dict[str, str] = {}
    """Per-site company overrides (site → company)."""
    fenced_entities: list[str] = []
    """Entities whose events are state snapshots: an older version after a newer is stale."""
    statistical_unit: Unit = "XXX"
    fee_currency: Unit = "USD"
    fee_schedule: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = {}
    """Expected fee per canonical service code in minor units; key ``default`` for the rest."""


AccountKind = Literal[
    "asset", "liability", "equity", "revenue", "contra_revenue", "expense", "memo", "statistical"
]


class AccountDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    kind: AccountKind


class SplitDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    weight: Weight = 1


class PostingDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: str
    debit: str | list[SplitDoc]
    credit: str | list[SplitDoc]
    dimensions: list[str] = []
    """Dimensions on both lines; ``name?`` = attach when known, else required."""
    debit_dimensions: list[str] | None = None
    credit_dimensions: list[str] | None = None
    memo: str | None = None


class WhenDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Selectors: the event matches when, for every selector given, its value is listed."""

    site: list[str] | None = None
    source_system: list[str] | None = None
    department: list[str] | None = None
    location: list[str] | None = None
    service: list[str] | None = None
    payer: list[str] | None = None
    payer_class: list[PayerClass] | None = None
    provider: list[str] | None = None
    cost_centre: list[str] | None = None
    place_of_service: list[str] | None = None
    self_pay: bool | None = None
    carc_group: list[CarcGroup] | None = None
    carc_reason: list[str] | None = None
    adjustment_scope: list[AdjustmentScope] | None = None
    claim_status: list[ClaimStatus] | None = None
    payment_method: list[PaymentMethod] | None = None
    appointment_status: list[AppointmentStatus] | None = None
    previous_status: list[PreviousStatus] | None = None


class RuleDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: RuleId
    events: Annotated[list[str], msgspec.Meta(min_length=1)]
    description: str = ""
    priority: int = 0
    when: WhenDoc = msgspec.field(default_factory=WhenDoc)
    posting_date: str = "occurred"
    journal: bool = True
    mirror: str | None = None
    posting: list[PostingDoc] = []


class RuleFileDoc(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rule: list[dict[str, Any]] = []


# -- compiled ------------------------------------------------------------------------------


class RuleError(ValueError):
    def __init__(self, file: str, rule: str | None, field_path: str, message: str) -> None:
        self.file, self.rule, self.field, self.reason = file, rule, field_path, message
        where = f"rule {rule!r}: " if rule else ""
        super().__init__(f"{file}: {where}{field_path}: {message}")


class RuleSetError(ValueError):
    """Every problem found in a rule directory (``errors``), one per line."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = tuple(errors)
        super().__init__("invalid mapping rules:\n" + "\n".join(f"  {e}" for e in errors))


@dataclass(frozen=True, slots=True)
class Target:
    account: str
    weight: int


@dataclass(frozen=True, slots=True)
class DimensionSpec:
    name: str
    required: bool


@dataclass(frozen=True)
class Posting:
    amount: Expression
    debit: tuple[Target, ...]
    credit: tuple[Target, ...]
    debit_dimensions: tuple[DimensionSpec, ...]
    credit_dimensions: tuple[DimensionSpec, ...]
    memo: str | None


@dataclass(frozen=True)
class Rule:
    id: str
    file: str
    position: int
    description: str
    events: frozenset[str]
    priority: int
    when: Mapping[str, frozenset[str]]
    posting_date: str
    journal: bool
    mirror: str | None
    postings: tuple[Posting, ...]

    def matches(self, selectors: Mapping[str, str | None]) -> bool:
        for name, allowed in self.when.items():
            value = selectors.get(name)
            if value is None or value not in allowed:
                return False
        return True


@dataclass(frozen=True)
class RuleSet:
    version: str
    company: str
    companies: Mapping[str, str]
    fenced_entities: frozenset[str]
    statistical_unit: str
    fee_currency: str
    fee_schedule: Mapping[str, int]
    accounts: Mapping[str, AccountDoc]
    rules: tuple[Rule, ...]
    description: str = ""
    by_event: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)

    def company_for(self, site: str) -> str:
        return self.companies.get(site, self.company)

    def candidates(self, event: str) -> tuple[Rule, ...]:
        return self.by_event.get(event, ())

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


_DIMENSION_RE: Final = re.compile(r"^([a-z_]+)(\?)?$")


def _location(path: str) -> str:
    """msgspec's ``$.posting[0].amount`` → ``posting[0].amount``."""
    return path.removeprefix("$").removeprefix(".") or "(rule)"


def _convert(doc: Any, kind: type[msgspec.Struct], file: str, rule: str | None) -> Any:
    try:
        return msgspec.convert(doc, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "(top level)"
        if " - at `" in message:
            message, _, rest = message.partition(" - at `")
            path = _location(rest.rstrip("`"))
        raise RuleError(file, rule, path, message) from None


def _dimensions(
    names: Sequence[str], file: str, rule: str, where: str, errors: list[RuleError]
) -> tuple[DimensionSpec, ...]:
    specs = []
    for index, raw in enumerate(names):
        match = _DIMENSION_RE.match(raw)
        if match is None or match.group(1) not in f.DIMENSIONS:
            known = ", ".join(f.DIMENSIONS)
            errors.append(
                RuleError(file, rule, f"{where}[{index}]", f"unknown dimension {raw!r} ({known})")
            )
            continue
        specs.append(DimensionSpec(match.group(1), match.group(2) is None))
    return tuple(specs)


def _targets(
    side: str | list[SplitDoc],
    accounts: Mapping[str, AccountDoc],
    file: str,
    rule: str,
    where: str,
    errors: list[RuleError],
) -> tuple[Target, ...]:
    if isinstance(side, str):
        splits = [SplitDoc(account=side)]
        paths = [where]
    else:
        splits = side
        paths = [f"{where}[{i}].account" for i in range(len(side))]
        if not splits:
            errors.append(RuleError(file, rule, where, "needs at least one account"))
    for split, path in zip(splits, paths, strict=True):
        if split.account not in accounts:
            errors.append(
                RuleError(file, rule, path, f"account {split.account!r} is not in {ACCOUNTS_FILE}")
            )
    return tuple(Target(s.account, s.weight) for s in splits)


def _check_template(text: str, file: str, rule: str, errors: list[RuleError]) -> None:
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        errors.append(RuleError(file, rule, "description", str(exc)))
        return
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in f.TEXT_FIELDS or spec or conversion:
            known = ", ".join(sorted(f.TEXT_FIELDS))
            errors.append(
                RuleError(file, rule, "description", f"unknown placeholder {{{name}}} ({known})")
            )


def compile_rule(
    raw: Mapping[str, Any],
    *,
    file: str,
    position: int,
    accounts: Mapping[str, AccountDoc],
    fenced: frozenset[str],
) -> tuple[Rule | None, list[RuleError]]:
    """Validate and compile one ``[[rule]]`` table; the errors name file, rule and field."""
    name = str(raw.get("id") or f"#{position + 1}")
    try:
        doc: RuleDoc = _convert(raw, RuleDoc, file, name)
    except RuleError as exc:
        return None, [exc]
    errors: list[RuleError] = []
    events = _known_events(doc.events, file, name, errors)
    _check_posting_date(doc.posting_date, events, file, name, errors)
    when = _selectors(doc.when)
    if "previous_status" in when:
        _check_previous_status(events, fenced, file, name, errors)
    _check_kind(doc, file, name, errors)
    if doc.description:
        _check_template(doc.description, file, name, errors)
    postings = _postings(doc.posting, events, accounts, file, name, errors)
    if errors:
        return None, errors
    rule = Rule(
        id=doc.id,
        file=file,
        position=position,
        description=doc.description,
        events=frozenset(events),
        priority=doc.priority,
        when=when,
        posting_date=doc.posting_date,
        journal=doc.journal,
        mirror=doc.mirror,
        postings=postings,
    )
    return rule, []


def _known_events(names: Sequence[str], file: str, rule: str, errors: list[RuleError]) -> list[str]:
    """The rule's events that exist; an error for each that does not."""
    for index, event in enumerate(names):
        if event not in f.EVENT_TYPES:
            known = ", ".join(sorted(f.EVENT_TYPES))
            errors.append(
                RuleError(file, rule, f"events[{index}]", f"unknown event {event!r} ({known})")
            )
    return [e for e in names if e in f.EVENT_TYPES]


def _check_posting_date(
    posting_date: str, events: Sequence[str], file: str, rule: str, errors: list[RuleError]
) -> None:
    for event in events:
        if posting_date not in f.DATES[event]:
            offered = ", ".join(sorted(f.DATES[event]))
            errors.append(
                RuleError(
                    file,
                    rule,
                    "posting_date",
                    f"{event} has no date {posting_date!r} (it has: {offered})",
                )
            )


def _selectors(when: WhenDoc) -> dict[str, frozenset[str]]:
    """The selectors given, each as the set of values it allows (booleans as text)."""
    return {
        key: frozenset(("true" if value else "false",) if isinstance(value, bool) else value)
        for key, value in msgspec.structs.asdict(when).items()
        if value is not None
    }


def _check_previous_status(
    events: Sequence[str], fenced: frozenset[str], file: str, rule: str, errors: list[RuleError]
) -> None:
    unfenced = sorted({e for e in events if e.split(".")[0] not in fenced})
    if unfenced:
        errors.append(
            RuleError(
                file,
                rule,
                "when.previous_status",
                f"only fenced entities have a previous status; not {', '.join(unfenced)}",
            )
        )


def _check_kind(doc: RuleDoc, file: str, rule: str, errors: list[RuleError]) -> None:
    """Exactly one of postings, a mirror of a known event, or ``journal = false``."""
    kinds = [not doc.journal, doc.mirror is not None, bool(doc.posting)]
    if sum(kinds) != 1:
        errors.append(
            RuleError(
                file, rule, "posting", "give exactly one of: postings, mirror, or journal = false"
            )
        )
    if doc.mirror is not None and doc.mirror not in f.EVENT_TYPES:
        errors.append(RuleError(file, rule, "mirror", f"unknown event {doc.mirror!r}"))


def _postings(
    docs: Sequence[PostingDoc],
    events: Sequence[str],
    accounts: Mapping[str, AccountDoc],
    file: str,
    rule: str,
    errors: list[RuleError],
) -> tuple[Posting, ...]:
    """The postings that compile (a posting whose amount does not parse is left out)."""
    postings = []
    for index, doc in enumerate(docs):
        posting = _posting(doc, f"posting[{index}]", events, accounts, file, rule, errors)
        if posting is not None:
            postings.append(posting)
    return tuple(postings)


def _posting(
    posting: PostingDoc,
    where: str,
    events: Sequence[str],
    accounts: Mapping[str, AccountDoc],
    file: str,
    rule: str,
    errors: list[RuleError],
) -> Posting | None:
    """One ``[[rule.posting]]``; None when its amount does not parse."""
    try:
        expression = parse(posting.amount)
    except ExpressionError as exc:
        errors.append(RuleError(file, rule, f"{where}.amount", str(exc)))
        return None
    _check_amount(expression, events, file, rule, f"{where}.amount", errors)
    both = _dimensions(posting.dimensions, file, rule, f"{where}.dimensions", errors)
    # A side's own dimensions when it gives them, else those of both lines.
    debit_dims = (
        both
        if posting.debit_dimensions is None
        else _dimensions(posting.debit_dimensions, file, rule, f"{where}.debit_dimensions", errors)
    )
    credit_dims = (
        both
        if posting.credit_dimensions is None
        else _dimensions(
            posting.credit_dimensions, file, rule, f"{where}.credit_dimensions", errors
        )
    )
    return Posting(
        amount=expression,
        debit=_targets(posting.debit, accounts, file, rule, f"{where}.debit", errors),
        credit=_targets(posting.credit, accounts, file, rule, f"{where}.credit", errors),
        debit_dimensions=debit_dims,
        credit_dimensions=credit_dims,
        memo=posting.memo,
    )


def _check_amount(
    expression: Expression,
    events: Sequence[str],
    file: str,
    rule: str,
    where: str,
    errors: list[RuleError],
) -> None:
    """The amount reads a named amount, and only amounts every one of its events carries."""
    if not expression.is_amount:
        errors.append(RuleError(file, rule, where, "reads no named amount: it has no unit"))
    for event in events:
        missing = sorted(expression.names - f.AMOUNTS[event])
        if missing:
            offered = ", ".join(sorted(f.AMOUNTS[event]))
            errors.append(
                RuleError(
                    file,
                    rule,
                    where,
                    f"{event} has no amount {', '.join(missing)} (it has: {offered})",
                )
            )


def _check_mirrors(rules: Sequence[Rule], errors: list[RuleError]) -> None:
    """A mirror rule re-runs the rules of its target event over its own event's facts."""
    for rule in rules:
        if rule.mirror is None:
            continue
        targets = [r for r in rules if rule.mirror in r.events]
        if not targets:
            errors.append(RuleError(rule.file, rule.id, "mirror", f"no rule maps {rule.mirror}"))
        for target in targets:
            if target.mirror is not None:
                errors.append(
                    RuleError(
                        rule.file, rule.id, "mirror", f"{target.id} is itself a mirror: no chains"
                    )
                )
            for event in rule.events:
                for posting in target.postings:
                    missing = sorted(posting.amount.names - f.AMOUNTS[event])
                    if missing:
                        errors.append(
                            RuleError(
                                rule.file,
                                rule.id,
                                "mirror",
                                f"{target.id} reads {', '.join(missing)}, which {event} lacks",
                            )
                        )


def compile_rule_set(
    ruleset: Mapping[str, Any],
    accounts: Mapping[str, Any],
    rule_files: Mapping[str, Mapping[str, Any]],
) -> RuleSet:
    """Compile parsed TOML documents (file name → document); raise RuleSetError listing all."""
    errors: list[RuleError] = []
    meta: RuleSetDoc | None = None
    chart: dict[str, AccountDoc] = {}
    try:
        meta = _convert(ruleset, RuleSetDoc, RULESET_FILE, None)
    except RuleError as exc:
        errors.append(exc)
    raw_accounts = accounts.get("accounts")
    if not isinstance(raw_accounts, dict) or set(accounts) != {"accounts"}:
        errors.append(RuleError(ACCOUNTS_FILE, None, "accounts", 'expected [accounts."<number>"]'))
        raw_accounts = {}
    for number, raw_account in raw_accounts.items():
        # One at a time, so that an error names the account (msgspec says "accounts[...]").
        try:
            chart[number] = _convert(raw_account, AccountDoc, ACCOUNTS_FILE, None)
        except RuleError as exc:
            where = f"accounts.{number}" + ("" if exc.field == "(top level)" else f".{exc.field}")
            errors.append(RuleError(ACCOUNTS_FILE, None, where, exc.reason))
    fenced = frozenset(meta.fenced_entities) if meta else frozenset()
    for index, entity in enumerate(sorted(fenced - ENTITIES)):
        errors.append(
            RuleError(RULESET_FILE, None, f"fenced_entities[{index}]", f"unknown {entity!r}")
        )
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for file in sorted(rule_files):
        try:
            doc: RuleFileDoc = _convert(rule_files[file], RuleFileDoc, file, None)
        except RuleError as exc:
            errors.append(exc)
            continue
        for position, raw in enumerate(doc.rule):
            rule, problems = compile_rule(
                raw, file=file, position=position, accounts=chart, fenced=fenced
            )
            errors.extend(problems)
            if rule is None:
                continue
            if rule.id in seen:
                errors.append(RuleError(file, rule.id, "id", f"already used in {seen[rule.id]}"))
            seen[rule.id] = file
            rules.append(rule)
    _check_mirrors(rules, errors)
    if not rules and not errors:
        errors.append(RuleError("(directory)", None, "rule", "no rules found"))
    if errors or meta is None:
        raise RuleSetError(errors)
    ordered = tuple(sorted(rules, key=lambda r: (-r.priority, r.file, r.position)))
    by_event = {event: tuple(r for r in ordered if event in r.events) for event in f.EVENT_TYPES}
    return RuleSet(
        version=meta.version,
        company=meta.company,
        companies=dict(meta.companies),
        fenced_entities=fenced,
        statistical_unit=meta.statistical_unit,
        fee_currency=meta.fee_currency,
        fee_schedule=dict(meta.fee_schedule),
        accounts=chart,
        rules=ordered,
        description=meta.description,
        by_event=by_event,
    )
