"""MLLP: the decoder fed arbitrary bytes in arbitrary chunks never raises, never holds more
than its limit, and yields the same frames however the stream was cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carebus_shared.mllp.framing import (
    END_BLOCK,
    START_BLOCK,
    Frame,
    MllpDecoder,
    OversizedFrame,
    frame,
)
from tests.fuzz.harness import FUZZ, hl7_mutated, hl7_samples, outcome

MAX = 2048
SAMPLES = hl7_samples()

# Streams rich in the framing bytes, so that frames, restarts and oversize all happen.
_pieces = st.sampled_from((START_BLOCK, END_BLOCK, b"\r", b"\n", b"MSH|^~\\&|", b"x" * 700))
streams = st.lists(_pieces | st.binary(max_size=64), max_size=60).map(b"".join) | st.binary(
    max_size=8192
)


def _feed(data: bytes, cuts: list[int]) -> list[Frame | OversizedFrame]:
    decoder = MllpDecoder(MAX)
    events: list[Frame | OversizedFrame] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += decoder.feed(data[start:cut])
        start = max(start, cut)
        assert decoder.buffered_bytes <= MAX
    return events


def _shape(events: list[Frame | OversizedFrame]) -> list[Frame | str]:
    return [e if isinstance(e, Frame) else "oversized" for e in events]


@FUZZ
@given(streams, st.lists(st.integers(min_value=0), max_size=20))
def test_any_stream_in_any_chunks(data: bytes, cuts: list[int]) -> None:
    events = outcome(lambda: _feed(data, cuts), ())
    assert isinstance(events, list)
    whole = _feed(data, [])
    # The same frames however the stream was cut (an oversized frame's head is "its first
    # bytes": how many depends on the reads, at least the limit plus one).
    assert _shape(events) == _shape(whole)
    for event in events:
        if isinstance(event, Frame):
            assert len(event.payload) <= MAX
            assert START_BLOCK not in event.payload
            assert END_BLOCK not in event.payload


@FUZZ
@given(st.lists(hl7_mutated(SAMPLES), min_size=1, max_size=4), st.lists(st.integers(0), max_size=8))
def test_framed_messages_come_back_whole_or_oversized(
    messages: list[bytes], cuts: list[int]
) -> None:
    clean = [m.replace(START_BLOCK, b"").replace(END_BLOCK, b"") for m in messages]
    events = outcome(lambda: _feed(b"".join(frame(m) for m in clean), cuts), ())
    assert isinstance(events, list)
    assert _shape(events) == [Frame(m) if len(m) <= MAX else "oversized" for m in clean]
    for event, message in zip(events, clean, strict=True):
        if isinstance(event, OversizedFrame):
            assert message.startswith(event.head)
            assert len(event.head) > MAX


def test_a_megabyte_in_one_read_and_byte_by_byte() -> None:
    data = frame(b"x" * (1024 * 1024)) + frame(b"MSH|^~\\&|ok")
    events = outcome(lambda: MllpDecoder(MAX).feed(data), (), seconds=5)
    assert isinstance(events, list)
    assert len(events) == 2
    assert isinstance(events[0], OversizedFrame)
    assert events[1] == Frame(b"MSH|^~\\&|ok")
    decoder = MllpDecoder(MAX)
    small = frame(b"y" * 5000) + b"\r\n" * 100 + frame(b"z")

    def bytewise() -> list[Frame | OversizedFrame]:
        return [e for i in range(len(small)) for e in decoder.feed(small[i : i + 1])]

    assert outcome(bytewise, (), seconds=5) == [OversizedFrame(b"y" * (MAX + 1)), Frame(b"z")]
