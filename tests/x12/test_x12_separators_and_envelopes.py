"""The same content parses the same whatever separators, line breaks or envelope it comes in."""

from __future__ import annotations

import msgspec
import pytest

from carebus_billing_adapter.adapters.x12 import parse_835
from carebus_billing_adapter.domain.remittance import Remittance
from tests.support.x12 import (
    LFH_835,
    replace_once,
    sample_text,
    with_separators,
    without_envelope,
)
from tests.support.x12_repaired_samples import (
    REPAIRED,
    managed_care,
    secondary_payment,
    tertiary_payment,
)

VALID = {name: repair for name, repair in REPAIRED.items()} | {
    f"{LFH_835}/medicare-part-a.835": lambda: sample_text(f"{LFH_835}/medicare-part-a.835")
}
SEPARATORS = {
    "pipe, gt, tilde, no newlines": dict(
        element="|", component=">", segment="~", repetition="{", newline=""
    ),
    "bang, backslash, quote, CRLF": dict(
        element="!", component="\\", segment="'", repetition="}", newline="\r\n"
    ),
    "control characters": dict(
        element="\x1d", component="\x1f", segment="\x1c", repetition="\x1e", newline=""
    ),
    "newline as terminator": dict(
        element="*", component=":", segment="\n", repetition="^", newline=""
    ),
}


ENVELOPE_FIELDS = {"interchange_control_number", "group_control_number", "file_digest"}


def _without_envelope_keys(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: _without_envelope_keys(item)
            for key, item in value.items()
            if not key.endswith("_id") and key not in ENVELOPE_FIELDS | {"implementation_version"}
        }
    if isinstance(value, list):
        return [_without_envelope_keys(item) for item in value]
    return value


def amounts(remittances: list[Remittance]) -> object:
    """The remittances' content without ids, digest and envelope fields."""
    return _without_envelope_keys(msgspec.to_builtins(remittances))


@pytest.mark.parametrize("separators", sorted(SEPARATORS))
@pytest.mark.parametrize("name", sorted(VALID))
def test_other_separators_give_identical_remittances(name: str, separators: str) -> None:
    text = VALID[name]()
    variant = with_separators(text, **SEPARATORS[separators])
    assert variant != text
    # Identical down to ids and digest: the digest is over normalised content.
    assert parse_835(variant) == parse_835(text)


@pytest.mark.parametrize("name", sorted(VALID))
def test_newlines_after_terminators_do_not_matter(name: str) -> None:
    text = VALID[name]()
    assert parse_835(text.replace("~\n", "~")) == parse_835(text)
    assert parse_835(text.replace("~\n", "~\r\n")) == parse_835(text)


@pytest.mark.parametrize("keep_group", [False, True], ids=["from ST", "from GS"])
@pytest.mark.parametrize("name", sorted(VALID))
def test_files_without_interchange_envelope(name: str, keep_group: bool) -> None:
    text = VALID[name]()
    bare = parse_835(without_envelope(text, keep_group=keep_group))
    enveloped = parse_835(text)
    assert amounts(bare) == amounts(enveloped)
    assert bare[0].interchange_control_number is None
    assert bare[0].sender_id == (
        "000000005" if keep_group and "LinuxForHealth" in name else bare[0].sender_id
    )


def test_bare_st_file_detects_its_own_separators() -> None:
    text = without_envelope(secondary_payment())
    variant = with_separators(
        text, element="|", component=">", segment="!", repetition="^", newline="\n"
    )
    assert amounts(parse_835(variant)) == amounts(parse_835(text))
    assert parse_835(variant)[0].claims[1].service_lines[0].procedure.modifiers == ["26"]


def test_several_groups_and_transactions_in_one_interchange() -> None:
    first, third = managed_care(), sample_text(f"{LFH_835}/medicare-part-a.835")
    second = (
        tertiary_payment().replace("ST*835*0001", "ST*835*0002").replace("SE*23*0001", "SE*23*0002")
    )

    def body(text: str) -> str:
        return text[text.index("ST*835") : text.index("GE*")]

    group_2 = (
        third[third.index("GS*") : third.index("IEA*")]
        .replace("*1*X*", "*2*X*")
        .replace("GE*1*1", "GE*1*2")
    )
    text = first[: first.index("GE*")] + body(second) + "GE*2*1~\n" + group_2 + "IEA*2*000000907~"
    remittances = parse_835(text)
    assert [(r.group_control_number, r.transaction_control_number) for r in remittances] == [
        ("1", "112233"),
        ("1", "0002"),
        ("2", "1234"),
    ]
    assert len({r.payment.payment_id for r in remittances}) == 3
    assert len({r.file_digest for r in remittances}) == 1


def test_redelivery_gives_the_same_ids_and_a_new_control_number_new_ones() -> None:
    text = managed_care()
    once, again = parse_835(text), parse_835(text.encode())
    assert once == again
    resent = replace_once(
        replace_once(text, "*000000907*", "*000000908*"), "IEA*1*000000907", "IEA*1*000000908"
    )
    (changed,) = parse_835(resent)
    assert changed.payment.payment_id != once[0].payment.payment_id
    assert changed.file_digest != once[0].file_digest
    all_ids = (
        [c.claim_payment_id for c in once[0].claims]
        + [a.adjustment_id for c in once[0].claims for a in c.adjustments]
        + [a.adjustment_id for c in once[0].claims for s in c.service_lines for a in s.adjustments]
    )
    assert len(all_ids) == len(set(all_ids))
