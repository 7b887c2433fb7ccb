"""ACK/NAK builder: swapped header, MSA-2 echo, ERR layout, broken inbound."""

from __future__ import annotations

from datetime import UTC, datetime

from carebus_shared.hl7 import Hl7MappingError, ack_code_of, build_ack, parse_message

INBOUND = "MSH|^~\\&|SCHED|SITE1|CAREBUS|HUB|20240102030405||SIU^S12^SIU_S12|MSG42|P|2.5.1\rSCH|1"
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _segments(ack: bytes) -> list[list[str]]:
    return [s.split("|") for s in ack.decode().split("\r")]


def test_aa_swaps_sender_and_receiver_and_echoes_control_id() -> None:
    ack = build_ack(parse_message(INBOUND), "AA", control_id="A1", now=NOW)
    msh, msa = _segments(ack)
    assert msh[2:6] == ["CAREBUS", "HUB", "SCHED", "SITE1"]
    assert msh[6] == "20240102030405+0000"
    assert msh[8:12] == ["ACK^S12^ACK", "A1", "P", "2.5.1"]
    assert msa[:3] == ["MSA", "AA", "MSG42"]
    assert ack_code_of(ack) == "AA"


def test_ae_carries_err_with_location_code_and_text() -> None:
    error = Hl7MappingError("101", "SCH-11.4", "no slot start")
    ack = build_ack(INBOUND.encode(), error.ack_code, error=error)
    _, msa, err = _segments(ack)
    assert msa[1:3] == ["AE", "MSG42"]
    assert err[2] == "SCH^1^11^1^4"
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err[8] == "no slot start"
    assert str(error) == "SCH-11.4: no slot start"


def test_v23_receivers_get_err1() -> None:
    inbound = INBOUND.replace("2.5.1", "2.3")
    error = Hl7MappingError("200", "MSH-9", "unsupported")
    ack = build_ack(inbound, error.ack_code, error=error)
    msh, msa, err = _segments(ack)
    assert msh[8] == "ACK^S12"
    assert msa[1] == "AR"
    assert err[1] == "MSH^1^9^200&Unsupported message type&HL70357"


def test_broken_inbound_still_gets_a_nak_with_salvaged_header() -> None:
    broken = b"\x00junk MSH|^~\\&|SENDER|SF|||20240101||ADT^A01|C77|P|2.4\rP!D|broken"
    ack = build_ack(broken, "AR", text="cannot parse")
    msh, msa = _segments(ack)
    assert msh[4:6] == ["SENDER", "SF"]
    assert msa[1:4] == ["AR", "C77", "cannot parse"]


def test_garbage_inbound_falls_back_to_defaults() -> None:
    msh, msa = _segments(build_ack(b"\xff\xfe not hl7", "AR"))
    assert msh[2] == "CAREBUS"
    assert msa[1:3] == ["AR", ""]


def test_error_text_with_delimiters_is_escaped() -> None:
    error = Hl7MappingError("102", "PID-3", "bad value a|b^c")
    err = _segments(build_ack(INBOUND, "AE", error=error))[2]
    assert err[8] == "bad value a\\F\\b\\S\\c"
