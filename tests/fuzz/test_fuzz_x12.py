"""X12 835: the billing adapter's remittance parse (``parse_835``, then the events and their
contract check, as ``handlers.remittance`` runs it) on arbitrary and on mutated sample files:
remittances or a ``RemittanceRejected``, never another exception, never a hang."""

from __future__ import annotations

import datetime as dt

from hypothesis import given

from carebus_billing_adapter.adapters.x12 import RemittanceRejected, parse_835
from carebus_billing_adapter.domain.remittance_events import RemittanceContext
from carebus_billing_adapter.handlers.remittance import _parse
from tests.fuzz.harness import FUZZ, any_bytes, outcome, with_prefix, x12_835_samples, x12_mutated

SAMPLES = x12_835_samples()
CONTEXT = RemittanceContext(
    site="SITE",
    source_system="clearinghouse",
    timezone=dt.UTC,
    recorded_at=dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC),
)
ISA = SAMPLES[0][:106]


def _remittance(raw: bytes) -> object:
    return _parse(raw, CONTEXT)


@FUZZ
@given(any_bytes() | with_prefix(b"ST*835*0001~", any_bytes()) | with_prefix(ISA, any_bytes()))
def test_parse_835_arbitrary_input(raw: bytes) -> None:
    outcome(lambda: parse_835(raw), (RemittanceRejected,))
    outcome(lambda: _remittance(raw), (RemittanceRejected,))


@FUZZ
@given(x12_mutated(SAMPLES))
def test_parse_835_mutated_samples(raw: bytes) -> None:
    outcome(lambda: _remittance(raw), (RemittanceRejected,))


@FUZZ
@given(x12_mutated(SAMPLES))
def test_parse_835_mutated_samples_as_text(raw: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    outcome(lambda: parse_835(text), (RemittanceRejected,))


_BIG = 1024 * 1024


def test_megabyte_files_are_answered_in_time() -> None:
    sample = SAMPLES[0]
    body_start = sample.index(b"~ST*") + 1 if b"~ST*" in sample else 106
    claim = sample[sample.index(b"CLP*") :].split(b"~LX*")[0] if b"CLP*" in sample else b"CLP*1~"
    for raw in (
        sample[:body_start] + claim * (_BIG // len(claim)) + sample[body_start:],
        ISA + b"~" * _BIG,
        ISA + b"*" * _BIG,
        ISA + b"ST*835*1~" + b"CAS*CO*45*" + b"9" * _BIG + b"~",
        ISA + b"ST*835*1~" + b"SVC*HC:" + b":" * _BIG + b"~",
        b"ST*835*1~" + b"\x00" * _BIG,
        b"ST*" + b"9" * _BIG,
    ):
        outcome(lambda raw=raw: _remittance(raw), (RemittanceRejected,), seconds=5)


# -- found by the properties above --------------------------------------------------------


def _with_clp_element(sample: bytes, number: int, value: bytes) -> bytes:
    start = sample.index(b"CLP*")
    end = sample.index(b"~", start)
    elements = sample[start:end].split(b"*")
    elements[number] = value
    return sample[:start] + b"*".join(elements) + sample[end:]


def test_an_amount_of_thousands_of_digits_is_an_issue_not_a_crash() -> None:
    # Was ValueError (int too long to print) from the balancing report of the claim.
    for sample in SAMPLES:
        raw = _with_clp_element(sample, 3, b"9" * 5000)
        rejected = outcome(lambda raw=raw: parse_835(raw), (RemittanceRejected,))
        assert isinstance(rejected, RemittanceRejected)
        messages = [issue.message for issue in rejected.rejection.issues]
        assert any("CLP03" in m and "longer than 18 characters" in m for m in messages)
        assert not any("9" * 19 in m for m in messages)


def test_text_with_lone_surrogates_is_read_as_the_bytes_it_stands_for() -> None:
    # Was UnicodeEncodeError from the digests and ids (msgspec cannot encode a lone surrogate).
    for sample in SAMPLES:
        raw = _with_clp_element(sample, 1, b"\x80\x1d")
        as_text = raw.decode("utf-8", "surrogateescape")
        from_text = outcome(lambda as_text=as_text: parse_835(as_text), (RemittanceRejected,))
        from_bytes = outcome(lambda raw=raw: parse_835(raw), (RemittanceRejected,))
        assert type(from_text) is type(from_bytes)


def test_counts_and_control_numbers_of_thousands_of_digits_are_issues() -> None:
    # Was ValueError (int() of more than 4300 digits) out of the envelope check; "²" is a
    # digit to str.isdigit() but not to int().
    for sample in SAMPLES:
        for trailer in (b"SE*", b"GE*", b"IEA*"):
            if trailer not in sample:
                continue
            start = sample.index(trailer) + len(trailer)
            for count in (b"9" * 5000, b"\xc2\xb2"):
                raw = sample[:start] + count + sample[sample.index(b"*", start) :]
                rejected = outcome(lambda raw=raw: _remittance(raw), (RemittanceRejected,))
                assert isinstance(rejected, RemittanceRejected)
                assert not any("9" * 20 in i.message for i in rejected.rejection.issues)
