"""Rule files: the shipped rule set loads, and every kind of mistake is reported with the
file, the rule and the field it is in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.domain import facts
from carebus_mapper.domain.rules import RuleSetError, WhenDoc
from tests.support.mapper import copy_default_rules


def test_the_default_rule_set_covers_every_validated_event_type() -> None:
    rules = load_rule_set()
    assert rules.version == "2025.03.2"
    assert rules.fenced_entities == {"appointment", "claim"}
    for event in facts.EVENT_TYPES:
        assert rules.candidates(event), f"no default rule for {event}"
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids))


def test_selectors_in_rule_files_are_the_facts_the_mapper_extracts() -> None:
    assert {f.name for f in msgspec.structs.fields(WhenDoc)} == set(facts.SELECTORS)


def _errors(directory: Path) -> list[tuple[str, str | None, str, str]]:
    with pytest.raises(RuleSetError) as caught:
        load_rule_set(directory)
    return [(e.file, e.rule, e.field, e.reason) for e in caught.value.errors]


def _write_rules(directory: Path, text: str) -> Path:
    folder = copy_default_rules(directory / "rules")
    (folder / "zz_test.toml").write_text(text)
    return folder


RULE = """
[[rule]]
id = "broken"
events = ["charge.posted"]
priority = 99
{extra}
[[rule.posting]]
amount = "{amount}"
debit = "{debit}"
credit = "4000"
dimensions = [{dims}]
"""


@pytest.mark.parametrize(
    ("extra", "amount", "debit", "dims", "field", "fragment"),
    [
        ("", "charge + payment", "1200", "", "posting[0].amount", "has no amount payment"),
        ("", "charge * units", "1200", "", "posting[0].amount", "cannot be multiplied"),
        ("", "charge +", "1200", "", "posting[0].amount", "end of expression"),
        ("", "charge", "1299", "", "posting[0].debit", "account '1299' is not in accounts.toml"),
        ("", "charge", "1200", '"cost_center"', "posting[0].dimensions[0]", "unknown dimension"),
        ("", "100", "1200", "", "posting[0].amount", "no unit"),
        ('posting_date = "received_on"', "charge", "1200", "", "posting_date", "received_on"),
        ('when.payer_class = ["gold"]', "charge", "1200", "", "when.payer_class[0]", "gold"),
        ('when.colour = ["red"]', "charge", "1200", "", "when", "unknown field `colour`"),
        ('when.previous_status = ["none"]', "charge", "1200", "", "when.previous_status", "fenced"),
        ('description = "{patient_ref}"', "charge", "1200", "", "description", "placeholder"),
        ('mirror = "charge.reversed"', "charge", "1200", "", "posting", "exactly one of"),
    ],
)
def test_a_mistake_is_named_by_file_rule_and_field(
    tmp_path: Path, extra: str, amount: str, debit: str, dims: str, field: str, fragment: str
) -> None:
    folder = _write_rules(tmp_path, RULE.format(extra=extra, amount=amount, debit=debit, dims=dims))
    errors = _errors(folder)
    assert any(
        file == "zz_test.toml" and rule == "broken" and where == field and fragment in reason
        for file, rule, where, reason in errors
    ), errors


def test_structural_errors_name_the_field_path(tmp_path: Path) -> None:
    folder = _write_rules(
        tmp_path,
        '[[rule]]\nid = "typed"\nevents = ["charge.posted"]\npriority = "high"\njournal = false\n',
    )
    assert _errors(folder) == [("zz_test.toml", "typed", "priority", "Expected `int`, got `str`")]


def test_unknown_events_duplicate_ids_and_syntax_errors(tmp_path: Path) -> None:
    folder = _write_rules(
        tmp_path,
        '[[rule]]\nid = "charge-posted"\nevents = ["charge.voided"]\njournal = false\n',
    )
    errors = _errors(folder)
    assert ("zz_test.toml", "charge-posted", "events[0]") in [e[:3] for e in errors]
    (folder / "zz_test.toml").write_text(
        '[[rule]]\nid = "charge-posted"\nevents = ["charge.posted"]\njournal = false\n'
    )
    [(file, rule, where, reason)] = _errors(folder)
    assert (file, rule, where) == ("zz_test.toml", "charge-posted", "id")
    assert "charges.toml" in reason
    (folder / "zz_test.toml").write_text("[[rule]\nid = 1\n")
    [(file, rule, where, reason)] = _errors(folder)
    assert (file, rule, where) == ("zz_test.toml", None, "(syntax)")
    assert "line 1" in reason


def test_a_mirror_must_have_something_to_mirror(tmp_path: Path) -> None:
    folder = copy_default_rules(tmp_path / "rules")
    (folder / "charges.toml").write_text(
        '[[rule]]\nid = "charge-reversed"\nevents = ["charge.reversed"]\nmirror = "charge.posted"\n'
    )
    errors = _errors(folder)
    assert ("charges.toml", "charge-reversed", "mirror", "no rule maps charge.posted") in errors


def test_ruleset_and_accounts_files_are_validated(tmp_path: Path) -> None:
    folder = copy_default_rules(tmp_path / "rules")
    text = (folder / "ruleset.toml").read_text()
    (folder / "ruleset.toml").write_text(
        text.replace('fenced_entities = ["appointment", "claim"]', 'fenced_entities = ["visit"]')
    )
    (folder / "accounts.toml").write_text('[accounts."1010"]\nname = "Cash"\nkind = "money"\n')
    errors = _errors(folder)
    assert ("ruleset.toml", None, "fenced_entities[0]", "unknown 'visit'") in errors
    assert any(e[0] == "accounts.toml" and e[2] == "accounts.1010.kind" for e in errors), errors


def test_check_rules_command_reports_problems_and_exits_non_zero(tmp_path: Path) -> None:
    folder = _write_rules(tmp_path, RULE.format(extra="", amount="charge", debit="1299", dims=""))
    script = [sys.executable, "-m", "carebus_mapper.entrypoints.cli", "check-rules"]
    bad = subprocess.run([*script, str(folder)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "zz_test.toml: rule 'broken': posting[0].debit: account '1299'" in bad.stderr
    good = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0
    assert "rule set 2025.03.2" in good.stdout
