"""Check a corrected stream message before it is republished (pure: no I/O).

A correction must still be the message its subject promises: the same contract event type,
decodable by its consumers, on the same subject (same site). What is wrong is named by its
field path and rule, never by the value (the body is patient data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from carebus_contracts.checks import ContractViolation, checked
from carebus_contracts.registry import (
    HEADER_EVENT_TYPE,
    ContractDecodeError,
    UnknownContractError,
    decode_message,
    subject_for,
)

# msgspec quotes the offending value in some messages ("Invalid enum value 'X'").
_QUOTED: Final = re.compile(r"'[^']*'")


@dataclass(frozen=True, slots=True)
class CorrectionRefused:
    reason: str  # a code: contract_violation, subject_changed, unknown_contract
    path: str
    rule: str

    @property
    def message(self) -> str:
        return f"the corrected body was refused: {self.rule} at {self.path}"


def rule_of(reason: str) -> str:
    """msgspec's message with any quoted value taken out."""
    return _QUOTED.sub("a value", reason).strip()


def check_correction(
    subject: str, headers: Mapping[str, str], corrected: bytes
) -> CorrectionRefused | None:
    """None when ``corrected`` may be republished on ``subject``; else what is wrong."""
    try:
        event = checked(decode_message(subject, corrected, headers))
    except ContractDecodeError as exc:
        if exc.path == "$.event_type":
            rule = f"event_type must stay {exc.event_type}"
            return CorrectionRefused("contract_violation", exc.path, rule)
        rule = f"{rule_of(exc.reason)} ({exc.event_type} {exc.schema_version})"
        return CorrectionRefused("contract_violation", exc.path, rule)
    except ContractViolation as exc:
        return CorrectionRefused("contract_violation", exc.path, exc.reason)
    except UnknownContractError:
        event_type = headers.get(HEADER_EVENT_TYPE, "the stored message's type")
        rule = f"no registered contract for {event_type} to check a correction against"
        return CorrectionRefused("unknown_contract", "$", rule)
    # The subject carries the site: a correction that moves the event to another site (or,
    # after an upcast, another version) is a different message, not a correction. It is
    # republished on the stored subject, so it must keep its partition too (its entity's
    # other events are read there, in order: docs/decisions/030); a message stored before
    # partitions has none to keep.
    new, old = subject_for(event).split("."), subject.split(".")
    if len(old) not in (5, 6) or new[:3] != old[:3] or new[4] != old[4]:
        return CorrectionRefused(
            "subject_changed", "$.site", "must keep the stored message's site and event type"
        )
    if len(old) == 6 and new[5] != old[5]:
        return CorrectionRefused(
            "subject_changed",
            "$.entity_key",
            "must keep the stored message's partition (its entity key, or a billing event's claim)",
        )
    return None
