"""Reading a rule directory (TOML files) into a compiled :class:`RuleSet`.

``ruleset.toml`` and ``accounts.toml`` are special; every other ``*.toml`` file in the
folder is a rule file. A TOML syntax error is reported like a rule error, with the file
and the line.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from carebus_mapper.domain.rules import (
    ACCOUNTS_FILE,
    RULESET_FILE,
    RuleError,
    RuleSet,
    RuleSetError,
    compile_rule_set,
)


def default_rules_dir() -> Path:
    """The rule set shipped in the package (``carebus_mapper/rules/default``)."""
    return Path(str(resources.files("carebus_mapper").joinpath("rules", "default")))


def _read(path: Path, errors: list[RuleError]) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        errors.append(RuleError(path.name, None, "(syntax)", str(exc)))
    except OSError as exc:
        errors.append(RuleError(path.name, None, "(file)", exc.strerror or str(exc)))
    return {}


def load_rule_set(directory: Path | str | None = None) -> RuleSet:
    """Load and validate the rules in ``directory`` (default: the shipped rule set)."""
    folder = Path(directory) if directory else default_rules_dir()
    if not folder.is_dir():
        raise RuleSetError([RuleError(str(folder), None, "(directory)", "not a directory")])
    errors: list[RuleError] = []
    ruleset = _read(folder / RULESET_FILE, errors)
    accounts = _read(folder / ACCOUNTS_FILE, errors)
    rule_files = {
        path.name: _read(path, errors)
        for path in sorted(folder.glob("*.toml"))
        if path.name not in (RULESET_FILE, ACCOUNTS_FILE)
    }
    if errors:
        raise RuleSetError(errors)
    return compile_rule_set(ruleset, accounts, rule_files)
