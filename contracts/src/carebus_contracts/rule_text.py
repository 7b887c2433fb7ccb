"""The rule of a msgspec error without the input's value: msgspec quotes an invalid enum or
literal value (``Invalid enum value 'X'``) and an unknown field's name; error texts name
the field and the rule, never what a message carried (issue 17, docs/decisions/028)."""

from __future__ import annotations

import re
from typing import Final

# A quoted value ('...' with escapes) or an unknown field's name (`...`).
_QUOTED: Final = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_UNKNOWN_FIELD: Final = re.compile(r"(unknown field) `[^`]*`")


def rule_only(reason: str) -> str:
    """``reason`` with every quoted input value removed."""
    reason = _UNKNOWN_FIELD.sub(r"\1", reason)
    return _QUOTED.sub("(value withheld)", reason).strip()
