"""HL7 v2: ``parse_message``, the SIU and DFT mappers as the adapters run them (map, then
the canonical events and their contract check) and the NAK builder, on arbitrary and on
mutated sample input: a result or an ``Hl7Error`` (a ``ContractViolation`` for the events),
never another exception, never a hang."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from carebus_billing_adapter.adapters.dft_events import dft_events
from carebus_billing_adapter.adapters.hl7_dft import map_dft
from carebus_contracts.checks import ContractViolation, all_checked, checked
from carebus_scheduling_adapter.adapters.hl7_siu import map_siu
from carebus_scheduling_adapter.adapters.hl7_siu_contract import to_contract
from carebus_shared.hl7 import Hl7Error, Hl7ParseError, build_ack, parse_message
from tests.fuzz.harness import (
    FUZZ,
    any_bytes,
    hl7_mutated,
    hl7_samples,
    outcome,
    with_prefix,
)

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
TZ = "America/Chicago"
ALL = hl7_samples()
SIU = hl7_samples("SIU", "ADT")
DFT = hl7_samples("DFT")
MSH = b"MSH|^~\\&|"


def _siu(raw: bytes | str) -> object:
    appointment = map_siu(raw, default_tz=TZ)
    return checked(to_contract(appointment, recorded_at=NOW))


def _dft(raw: bytes | str) -> object:
    lines = map_dft(raw, default_tz=TZ, default_currency="USD")
    return all_checked(dft_events(lines, default_site="SITE", recorded_at=NOW))


def _ack(raw: bytes) -> bytes:
    """What the MLLP glue answers to input that does not parse: it must always be built."""
    try:
        parse_message(raw)
    except Hl7ParseError as exc:
        return build_ack(raw, "AR", error=exc)
    return build_ack(raw, "AA")


# -- parse_message ------------------------------------------------------------------------


@FUZZ
@given(any_bytes() | with_prefix(MSH, any_bytes()))
def test_parse_message_arbitrary_bytes(raw: bytes) -> None:
    outcome(lambda: parse_message(raw), (Hl7ParseError,))


@FUZZ
@given(st.text(max_size=2000) | st.text(max_size=2000).map(lambda t: "MSH|^~\\&|" + t))
def test_parse_message_arbitrary_text(text: str) -> None:
    outcome(lambda: parse_message(text), (Hl7ParseError,))


@FUZZ
@given(hl7_mutated(ALL))
def test_parse_message_mutated_samples(raw: bytes) -> None:
    outcome(lambda: parse_message(raw), (Hl7ParseError,))


# -- the NAK for anything -----------------------------------------------------------------


@FUZZ
@given(any_bytes() | with_prefix(MSH, any_bytes()) | hl7_mutated(ALL))
# Found by this property (fixed in carebus_shared.hl7.ack): an MSH line shorter than MSH-2
# after other text (IndexError), and an empty MSH-2, i.e. no component separator, both in a
# message that parses (the AA/AE path) and in one that does not (ValueError: empty separator).
@example(b"\x0bMSH\rPID|1")
@example(b"MSH||A|B|C|D|||SIU^S12|1|P|2.5")
@example(b"x\rMSH||||||||SIU^S12|1|P|2.5")
def test_an_ack_is_built_for_any_input(raw: bytes) -> None:
    ack = outcome(lambda: _ack(raw), ())
    assert isinstance(ack, bytes)
    assert ack.startswith(b"MSH")


# -- SIU ------------------------------------------------------------------------------------


@FUZZ
@given(any_bytes() | with_prefix(b"MSH|^~\\&|A|B|C|D|20250310||SIU^S12|1|P|2.5\r", any_bytes()))
def test_siu_mapping_arbitrary_input(raw: bytes) -> None:
    outcome(lambda: _siu(raw), (Hl7Error, ContractViolation))


@FUZZ
@given(hl7_mutated(SIU))
def test_siu_mapping_mutated_samples(raw: bytes) -> None:
    outcome(lambda: _siu(raw), (Hl7Error, ContractViolation))


# -- DFT ------------------------------------------------------------------------------------


@FUZZ
@given(any_bytes() | with_prefix(b"MSH|^~\\&|A|B|C|D|20250310||DFT^P03|1|P|2.5\r", any_bytes()))
def test_dft_mapping_arbitrary_input(raw: bytes) -> None:
    outcome(lambda: _dft(raw), (Hl7Error, ContractViolation))


@FUZZ
@given(hl7_mutated(DFT))
def test_dft_mapping_mutated_samples(raw: bytes) -> None:
    outcome(lambda: _dft(raw), (Hl7Error, ContractViolation))


# -- pathological sizes -------------------------------------------------------------------

_BIG = 1024 * 1024


def _pathological() -> list[bytes]:
    siu, dft = SIU[0], DFT[0]
    return [
        siu + b"\rNTE|1||" + b"x" * _BIG,  # one 1 MB field
        dft + (b"\rZZZ|" + b"|" * 50) * (_BIG // 56),  # ~20 000 segments
        b"MSH|^~\\&|" + b"^" * _BIG,  # 1 MB of component separators
        b"MSH|^~\\&|" + b"\\" * _BIG,  # 1 MB of escape characters
        b"MSH|^~\\&|" + b"\\X" + b"41" * (_BIG // 2) + b"\\",  # a 1 MB hex escape
        b"MSH|^~\\&|" + b"~" * _BIG,
        siu.replace(b"|", b"|" + b"~" * 1000),  # every field 1000 repetitions
        b"\x00" * _BIG,
        b"MSH|" + b"\xff" * _BIG,
        b"\r" * _BIG + siu,
    ]


def test_megabyte_messages_are_answered_in_time() -> None:
    for raw in _pathological():
        outcome(lambda raw=raw: parse_message(raw), (Hl7ParseError,), seconds=5)
        outcome(lambda raw=raw: _siu(raw), (Hl7Error, ContractViolation), seconds=5)
        outcome(lambda raw=raw: _dft(raw), (Hl7Error, ContractViolation), seconds=5)
        outcome(lambda raw=raw: _ack(raw), (), seconds=5)


# -- found by these properties and the 'fuzz' profile -------------------------------------

_SIU = b"MSH|^~\\&|A|B|C|D|20250310||SIU^S12|1|P|2.5\r%s\rPID|1||M1"


def test_absurd_durations_and_slot_ends_are_data_type_errors() -> None:
    # Were OverflowError, decimal.Overflow and decimal.InvalidOperation out of map_siu.
    schs = [
        b"SCH|1|2|||||||%s|min|^^^20250310090000" % amount
        for amount in (b"9" * 30, b"1E999999999", b"NaN", b"sNaN", b"Infinity", b"-Infinity")
    ]
    schs += [
        b"SCH|1|2|||||||30|min|^^^99991231235959",  # the end after year 9999
        b"SCH|1|2|||||||||^^" + b"9" * 40 + b"^20250310090000",  # TQ duration (SCH-11.3)
    ]
    for sch in schs:
        error = outcome(lambda sch=sch: map_siu(_SIU % sch, default_tz=TZ), (Hl7Error,))
        assert isinstance(error, Hl7Error)
        assert error.code == "102"
        assert b"9" * 20 not in error.message.encode()


def test_absurd_ft1_amounts_and_quantities_are_data_type_errors_in_time() -> None:
    # FT1-11 of 1E999999999 raised decimal.Overflow and 1E500000 took seconds (int() of a
    # huge number); FT1-10 of NaN raised decimal.InvalidOperation, of 1E999999999 hung.
    sample = DFT[0]
    start = sample.index(b"FT1|")
    end = sample.find(b"\r", start)
    end = len(sample) if end < 0 else end
    fields = sample[start:end].split(b"|")
    fields += [b""] * (13 - len(fields))
    for number, value in [(11, v) for v in (b"1E999999999", b"1E500000", b"-1E500000")] + [
        (10, v) for v in (b"NaN", b"sNaN", b"Infinity", b"1E999999999", b"9" * 5000)
    ]:
        changed = list(fields)
        changed[number] = value
        raw = sample[:start] + b"|".join(changed) + sample[end:]
        error = outcome(lambda raw=raw: _dft(raw), (Hl7Error, ContractViolation), seconds=2)
        assert isinstance(error, Hl7Error), (number, value[:12])
        assert error.location is not None
        assert error.location.field == number
        assert b"9" * 20 not in error.message.encode()
