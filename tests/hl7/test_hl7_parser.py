"""Parser, escapes, encodings and timestamps on hand-made edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from carebus_shared.hl7 import (
    EncodingCharacters,
    Hl7ParseError,
    InvalidTimestamp,
    escape,
    parse_dtm,
    parse_message,
    unescape,
)

MSH = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240102030405||SIU^S12|CTRL1|P|2.5.1"
BODY = ["PID|1||MRN1^^^HOSP^MR~ALT2^^^OTHER||Müller^Zoë", 'PV1|1|O|""|', "ZXX|custom|data"]


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segment_separators_are_all_accepted(separator: str) -> None:
    msg = parse_message(separator.join([MSH, *BODY]).encode())
    assert [s.name for s in msg] == ["MSH", "PID", "PV1", "ZXX"]
    assert msg.control_id == "CTRL1"


def test_bom_is_stripped_and_utf8_decoded() -> None:
    msg = parse_message(b"\xef\xbb\xbf" + "\r".join([MSH, *BODY]).encode())
    pid = msg.segment("PID")
    assert pid is not None
    assert pid.value(5) == "Müller"
    assert pid.value(5, 2) == "Zoë"


def test_latin1_declared_in_msh18() -> None:
    text = MSH + "||||||8859/1\rPID|1||X||Fran\xe7ois"
    msg = parse_message(text.encode("latin-1"))
    assert msg.charset == "iso-8859-1"
    assert msg.all("PID")[0].value(5) == "François"


def test_undeclared_non_utf8_falls_back_to_cp1252() -> None:
    msg = parse_message((MSH + "\rPID|1||X||Fran\xe7ois").encode("latin-1"))
    assert msg.all("PID")[0].value(5) == "François"


def test_declared_utf8_that_is_not_utf8_is_rejected() -> None:
    with pytest.raises(Hl7ParseError, match="MSH-18"):
        parse_message((MSH + "||||||UNICODE UTF-8\rPID|1||\xff").encode("latin-1"))


def test_repetitions_components_and_null() -> None:
    msg = parse_message("\r".join([MSH, *BODY]))
    pid, pv1 = msg.all("PID")[0], msg.all("PV1")[0]
    assert [f.component(1) for f in pid.repetitions(3)] == ["MRN1", "ALT2"]
    assert pid.value(3, 4, rep=2) == "OTHER"
    assert pv1.value(3) is None
    assert pv1.is_null(3)
    assert pv1.value(4) is None
    assert not pv1.is_null(4)
    assert msg.all("ZXX")[0].value(1) == "custom"  # Z-segments stay in the message


def test_repeated_reads_give_the_same_values_and_segment_lists_are_copies() -> None:
    msg = parse_message("\r".join([MSH, *BODY, "PID|2||MRN3"]))
    pid = msg.segment("PID")
    assert pid is not None
    first = [(f.component(1), f.component(4)) for f in pid.repetitions(3)]
    assert [(f.component(1), f.component(4)) for f in pid.repetitions(3)] == first
    assert pid.value(3, 4, rep=2) == "OTHER" == pid.value(3, 4, rep=2)
    assert pid.value(3, rep=3) is None
    assert pid.field(99) is None
    assert pid.repetitions(99) == ()
    found = msg.all("PID")
    found.clear()  # a caller's list, not the message's index
    assert [s.index for s in msg.all("PID")] == [1, 2]
    assert msg.segment("PID") is pid
    assert msg.segment("AIS") is None
    assert msg.all("AIS") == []


def test_msh_numbering_and_encoding_characters_are_not_split() -> None:
    msg = parse_message(MSH)
    assert msg.msh.value(1) == "|"
    assert msg.msh.value(2) == "^~\\&"
    assert msg.msh.value(9, 2) == "S12"


def test_custom_encoding_characters() -> None:
    text = "MSH#$*!@#APP#FAC#R#RF#20240102##SIU$S12#C9#P#2.4\rPID#1##A$$$AUTH*B$$$X#!F!x"
    msg = parse_message(text)
    assert msg.encoding == EncodingCharacters("#", "$", "*", "!", "@")
    pid = msg.all("PID")[0]
    assert [f.component(4) for f in pid.repetitions(3)] == ["AUTH", "X"]
    assert pid.value(4) == "#x"  # \F\ written with the custom escape character


def test_doubled_backslash_in_msh2_is_tolerated() -> None:
    msg = parse_message("MSH|^~\\\\&|SE050|050|PACS|050|20120912011230||ADT^A01|102|T|2.6")
    assert msg.encoding.subcomponent == "&"
    assert msg.trigger_event == "A01"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A\\F\\B", "A|B"),
        ("A\\S\\B\\T\\C\\R\\D\\E\\", "A^B&C~D\\"),
        ("Caf\\XC3A9\\", "Café"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\H\\bold\\N\\", "bold"),
        ("unterminated \\F", "unterminated \\F"),
        ("unknown \\Q\\ kept", "unknown \\Q\\ kept"),
    ],
)
def test_unescape(raw: str, expected: str) -> None:
    assert unescape(raw) == expected


def test_escape_round_trip() -> None:
    text = "A|B^C&D~E\\F"
    assert unescape(escape(text)) == text


def test_escaped_delimiters_do_not_split_fields() -> None:
    msg = parse_message(MSH + "\rPV1|1|O|||||||||NHS (inc.A\\T\\E)|x")
    assert msg.all("PV1")[0].value(11) == "NHS (inc.A&E)"


@pytest.mark.parametrize(
    "text",
    ["", "PID|1", "MSH", "MSH|^~\\&|A\rP!D|1", "MSH|^~\\&|A\rMSH|^~\\&|B", "MSH|^^^^|A"],
)
def test_broken_messages_raise_parse_errors(text: str) -> None:
    with pytest.raises(Hl7ParseError):
        parse_message(text)


class TestTimestamps:
    def test_offset_is_kept(self) -> None:
        moment = parse_dtm("202109141120+0215", "UTC")
        assert moment.utcoffset() == timedelta(hours=2, minutes=15)
        assert moment == datetime(2021, 9, 14, 9, 5, tzinfo=UTC)

    def test_negative_offset_and_fraction(self) -> None:
        moment = parse_dtm("20240102030405.1234-0500", "UTC")
        assert moment.microsecond == 123400
        assert moment.tzinfo == timezone(timedelta(hours=-5))

    def test_default_zone_applies_without_offset_and_follows_dst(self) -> None:
        winter = parse_dtm("202401151000", "Europe/London")
        summer = parse_dtm("202407151000", "Europe/London")
        assert winter.utcoffset() == timedelta(0)
        assert summer.utcoffset() == timedelta(hours=1)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024", datetime(2024, 1, 1)),
            ("202403", datetime(2024, 3, 1)),
            ("20240305", datetime(2024, 3, 5)),
            ("2024030507", datetime(2024, 3, 5, 7)),
            ("202403050708", datetime(2024, 3, 5, 7, 8)),
            ("20240305070809.5", datetime(2024, 3, 5, 7, 8, 9, 500_000)),
        ],
    )
    def test_partial_precision(self, text: str, expected: datetime) -> None:
        assert parse_dtm(text, "UTC") == expected.replace(tzinfo=UTC)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "abc",
            "20241",
            "20240230",
            "202401011200.5",
            "20240101+9900",
            "2024-01-01",
            "202401010000000",
        ],
    )
    def test_invalid(self, text: str) -> None:
        with pytest.raises(InvalidTimestamp):
            parse_dtm(text, "UTC")
