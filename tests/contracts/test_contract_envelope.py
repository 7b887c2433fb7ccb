"""Envelope rules that hold for every contract: frozen, keyword-only, aware timestamps,
unknown fields tolerated, no floats anywhere, decode errors that name the path."""

from __future__ import annotations

import datetime as dt
import inspect

import msgspec
import msgspec.inspect as mi
import pytest

from carebus_contracts import REGISTRY, ContractDecodeError, ContractInfo, decode, encode
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.examples import build_examples

CONTRACTS = REGISTRY.contracts()
IDS = [c.key for c in CONTRACTS]
EXAMPLES = {type(event): event for event, _ in build_examples()}


def _struct_types(info: mi.Type) -> list[mi.StructType]:
    """Every struct reachable from ``info`` (payload parts included)."""
    found: list[mi.StructType] = []
    stack = [info]
    while stack:
        node = stack.pop()
        if isinstance(node, mi.StructType):
            if node.cls in {s.cls for s in found}:
                continue
            found.append(node)
            stack.extend(f.type for f in node.fields)
        elif isinstance(node, mi.UnionType):
            stack.extend(node.types)
        elif isinstance(node, mi.VarTupleType | mi.ListType):
            stack.append(node.item_type)
    return found


@pytest.mark.parametrize("info", CONTRACTS, ids=IDS)
def test_every_struct_is_frozen_keyword_only_and_lenient(info: ContractInfo) -> None:
    for struct in _struct_types(mi.type_info(info.type)):
        config = struct.cls.__struct_config__
        assert config.frozen, f"{struct.cls.__name__} is not frozen"
        assert not config.forbid_unknown_fields, f"{struct.cls.__name__} rejects unknown fields"
        params = inspect.signature(struct.cls).parameters.values()
        positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert positional == [], f"{struct.cls.__name__} has positional fields {positional}"


@pytest.mark.parametrize("info", CONTRACTS, ids=IDS)
def test_money_is_never_a_float(info: ContractInfo) -> None:
    def walk(node: mi.Type, path: str) -> None:
        assert not isinstance(node, mi.FloatType | mi.DecimalType), f"float at {path}"
        if isinstance(node, mi.StructType):
            for f in node.fields:
                walk(f.type, f"{path}.{f.encode_name}")
        elif isinstance(node, mi.UnionType):
            for t in node.types:
                walk(t, path)
        elif isinstance(node, mi.VarTupleType | mi.ListType):
            walk(node.item_type, f"{path}[]")

    walk(mi.type_info(info.type), "$")


def test_instances_are_immutable_and_reject_positional_arguments() -> None:
    event = EXAMPLES[JournalEntryRequested]
    with pytest.raises(AttributeError):
        event.journal_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        JournalEntryRequested("1.0")  # type: ignore[misc]


def test_naive_timestamps_are_rejected_on_construction_and_decode() -> None:
    event = EXAMPLES[JournalEntryRequested]
    with pytest.raises(ValueError, match="timezone-aware"):
        msgspec.structs.replace(event, occurred_at=dt.datetime(2025, 1, 1, 12, 0))
    raw = encode(event).replace(
        b'"occurred_at":"2025-03-10T09:15:00-06:00"', b'"occurred_at":"2025-03-10T09:15:00"'
    )
    with pytest.raises(ContractDecodeError) as caught:
        decode(raw, "erp.journal.requested", "1.0")
    assert caught.value.path == "$.occurred_at"
    assert "timezone" in caught.value.reason


def test_unknown_fields_are_ignored_at_every_level() -> None:
    event = EXAMPLES[JournalEntryRequested]
    doc = msgspec.json.decode(encode(event))
    doc["added_in_a_later_minor"] = {"nested": [1, 2]}
    doc["lines"][1]["new_line_field"] = "x"
    doc["lines"][1]["amount"]["precision_hint"] = 2
    assert decode(msgspec.json.encode(doc), "erp.journal.requested", "1.3") == event


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda d: d["lines"][1]["amount"].update(amount_minor="125.00"),
            "$.lines[1].amount.amount_minor",
            "Expected `int`, got `str`",
        ),
        (
            lambda d: d["lines"][0]["amount"].update(amount_minor=125.5),
            "$.lines[0].amount.amount_minor",
            "Expected `int`, got `float`",
        ),
        (
            lambda d: d["lines"][0]["amount"].update(currency="usd"),
            "$.lines[0].amount.currency",
            "Expected `str` matching",
        ),
        (
            lambda d: d["lines"][1].update(side="both"),
            "$.lines[1].side",
            "Invalid enum value (value withheld)",  # the rule, not the value
        ),
        (lambda d: d.pop("journal_id"), "$", "missing required field `journal_id`"),
        (lambda d: d.update(event_type="erp.journal.posted"), "$.event_type", "Invalid value"),
    ],
)
def test_decode_errors_name_the_path(mutate: object, path: str, reason: str) -> None:
    doc = msgspec.json.decode(encode(EXAMPLES[JournalEntryRequested]))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ContractDecodeError) as caught:
        decode(msgspec.json.encode(doc), "erp.journal.requested", "1.0")
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value).endswith(f"at {path}")


def test_malformed_json_is_a_contract_error_at_the_root() -> None:
    with pytest.raises(ContractDecodeError) as caught:
        decode(b'{"event_type": nope}', "erp.journal.requested", "1.0")
    assert caught.value.path == "$"
    assert "malformed" in caught.value.reason


def test_journal_problems_report_unbalanced_and_non_positive_lines() -> None:
    event = EXAMPLES[JournalEntryRequested]
    assert event.problems() == []
    first, second = event.lines
    bad = msgspec.structs.replace(
        event,
        lines=(
            first,
            msgspec.structs.replace(
                second, amount=msgspec.structs.replace(second.amount, amount_minor=-5)
            ),
        ),
    )
    assert bad.problems() == [
        "$.lines[1].amount.amount_minor must be positive",
        "debits and credits differ by 12505 minor units of USD",
    ]


def test_envelope_fields_are_shared_by_every_event() -> None:
    envelope = {f.name for f in msgspec.structs.fields(Event)}
    for info in CONTRACTS:
        names = [f.encode_name for f in msgspec.structs.fields(info.type)]
        assert envelope <= set(names), info.key
        assert issubclass(info.type, Event)
