"""DFT mapping: FT1 lines, exact money, deterministic line ids, errors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from carebus_billing_adapter.adapters.hl7_dft import Hl7MappingError, map_dft, to_minor_units
from carebus_contracts.envelope import Money

NPI_XCN = "1234567893^Doe^Jane^^^^^^&2.16.840.1.113883.4.6&ISO^^^^NPI"


def dft(*ft1: str, trigger: str = "P03") -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^{trigger}|M77|P|2.5",
            "EVN|P03|20250310091500",
            "PID|1||MRN-9^^^HOSP^MR",
            "PV1|1|O|CLIN1^^^MAIN||||||||||||||||V123",
            *ft1,
            "ZFT|ignored",
        ]
    )


LINE = (
    f"FT1|1|T1||20250310|20250311|CG|99213^Visit^CPT|||2|150.50&USD|75.25&USD|CARD^Cardiology"
    f"|||ROOM1^^^MAIN|||I10^Dx^I10~E11.9^Diabetes^I10|{NPI_XCN}|ORD1^Ord^Olga||||99213^Visit^CPT|25~59"
)


def test_ft1_fields() -> None:
    (line,) = map_dft(dft(LINE), default_tz="America/Chicago", default_currency="USD")
    assert line.line_id == "PM^SITE01:M77:1"
    assert (line.transaction_type, line.transaction_type_code) == ("charge", "CG")
    assert line.transaction_date == datetime(2025, 3, 10, tzinfo=ZoneInfo("America/Chicago"))
    assert line.quantity == Decimal(2)
    assert line.extended_amount == Money(amount_minor=15050, currency="USD")
    assert line.unit_amount == Money(amount_minor=7525, currency="USD")
    assert line.procedure_code is not None
    assert line.procedure_code.code == "99213"
    assert line.procedure_modifiers == ("25", "59")
    assert [d.code for d in line.diagnosis_codes] == ["I10", "E11.9"]
    assert line.performing_providers[0].npi == "1234567893"
    assert line.ordering_providers[0].id == "ORD1"
    assert line.department is not None
    assert line.department.code == "CARD"
    assert line.location is not None
    assert line.location.point_of_care == "ROOM1"
    assert (line.patient.id, line.visit_number) == ("MRN-9", "V123")


def test_several_ft1_and_types() -> None:
    lines = map_dft(
        dft(LINE, "FT1|2|||20250310||PY|||||-50.00", "FT1|3|||20250310||AJ||||1|-5",
            "FT1|4|||20250310||cd||||1|10.00&EUR"),
        default_tz="UTC",
        default_currency="USD",
    )  # fmt: skip
    assert [x.transaction_type for x in lines] == ["charge", "payment", "adjustment", "credit"]
    assert [x.line_id for x in lines][1:] == [
        "PM^SITE01:M77:2",
        "PM^SITE01:M77:3",
        "PM^SITE01:M77:4",
    ]
    assert lines[1].extended_amount == Money(amount_minor=-5000, currency="USD")
    assert lines[3].extended_amount == Money(amount_minor=1000, currency="EUR")
    assert lines[1].quantity == Decimal(1)  # FT1-10 absent


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.3", "USD", 1230), ("0.10", "USD", 10), ("1500", "JPY", 1500), ("1.234", "KWD", 1234),
     ("-0.01", "USD", -1), ("1e2", "USD", 10000)],
)  # fmt: skip
def test_minor_units_are_exact(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(amount, currency) == minor


@pytest.mark.parametrize("amount", ["0.001", "abc", "NaN", "1.5"])
def test_inexact_or_invalid_amounts_are_rejected(amount: str) -> None:
    currency = "JPY" if amount == "1.5" else "USD"
    with pytest.raises(Hl7MappingError):
        to_minor_units(amount, currency)


@pytest.mark.parametrize(
    ("ft1", "message", "value"),
    [
        ("FT1|1|||20250310||XX",
         "FT1-6: transaction type is not in table 0017 (CG, CD, PY, AJ)", "XX"),
        ("FT1|1||||", "FT1-6: no transaction type", None),
        ("FT1|1|||||CG", "FT1-4: no transaction date", None),
        ("FT1|1|||20250310||CG||||1|12.345&USD",
         "FT1-11.1: amount has more decimals than its currency allows", "12.345"),
        ("FT1|1|||20250310||CG||||x", "FT1-10: quantity is not a number", "x"),
    ],
)  # fmt: skip
def test_errors_name_the_field_and_rule_not_the_value(
    ft1: str, message: str, value: str | None
) -> None:
    with pytest.raises(Hl7MappingError) as info:
        map_dft(dft(ft1), default_tz="UTC", default_currency="USD")
    assert str(info.value) == message
    # The value goes to the exception store's offending_value only (issue 17).
    assert info.value.value == value


def test_duplicate_set_id_in_second_ft1_is_located() -> None:
    with pytest.raises(Hl7MappingError) as info:
        map_dft(dft(LINE, LINE), default_tz="UTC", default_currency="USD")
    assert str(info.value) == "FT1[2]-1: duplicate FT1 set id 1"


def test_message_level_rejections() -> None:
    with pytest.raises(Hl7MappingError, match="FT1: no FT1 segment"):
        map_dft(dft(), default_tz="UTC", default_currency="USD")
    with pytest.raises(Hl7MappingError) as info:
        map_dft(dft(LINE, trigger="P01"), default_tz="UTC", default_currency="USD")
    assert info.value.reason == "unsupported_trigger_event"
