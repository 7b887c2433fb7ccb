"""Sans-I/O MLLP decoder: splits, batching, garbage, oversize."""

from __future__ import annotations

import pytest

from carebus_shared.mllp import Frame, MllpDecoder, OversizedFrame, frame

MSG1 = b"MSH|^~\\&|A|B|C|D|20240101||SIU^S12|1|P|2.5\rSCH|1"
MSG2 = "MSH|^~\\&|A|B|C|D|20240101||SIU^S12|2|P|2.5\rPID|1||Zoë".encode()


def _payloads(events: list[Frame | OversizedFrame]) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


def test_split_at_every_byte_boundary() -> None:
    wire = frame(MSG1) + frame(MSG2)
    for cut in range(len(wire) + 1):
        decoder = MllpDecoder(1024)
        events = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])
        assert _payloads(events) == [MSG1, MSG2], cut
        assert decoder.garbage_bytes == 0


def test_byte_by_byte() -> None:
    decoder = MllpDecoder(1024)
    events = [e for b in frame(MSG1) * 3 for e in decoder.feed(bytes([b]))]
    assert _payloads(events) == [MSG1] * 3


def test_several_messages_in_one_read() -> None:
    assert _payloads(MllpDecoder(1024).feed(frame(MSG1) + frame(MSG2) + frame(MSG1))) == [
        MSG1,
        MSG2,
        MSG1,
    ]


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    decoder = MllpDecoder(1024)
    events = decoder.feed(b"junk" + frame(MSG1) + b"\r\n" + b"xx" + frame(MSG2) + b"tail")
    assert _payloads(events) == [MSG1, MSG2]
    assert decoder.garbage_bytes == len(b"junk") + len(b"xx") + len(b"tail")


def test_abandoned_frame_is_garbage() -> None:
    decoder = MllpDecoder(1024)
    events = decoder.feed(b"\x0bMSH|half" + frame(MSG1))
    assert _payloads(events) == [MSG1]
    assert decoder.garbage_bytes == len(b"\x0bMSH|half")


def test_missing_trailing_cr_is_tolerated() -> None:
    decoder = MllpDecoder(1024)
    assert _payloads(decoder.feed(b"\x0b" + MSG1 + b"\x1c\x0b" + MSG2 + b"\x1c")) == [MSG1, MSG2]


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_oversized_frame_is_reported_once_and_skipped(chunk: int) -> None:
    big = MSG1 + b"\rNTE|" + b"x" * 5000
    wire = frame(big) + frame(MSG2)
    decoder = MllpDecoder(1000)
    events = [e for i in range(0, len(wire), chunk) for e in decoder.feed(wire[i : i + chunk])]
    oversized = [e for e in events if isinstance(e, OversizedFrame)]
    assert len(oversized) == 1
    assert oversized[0].head.startswith(b"MSH|")
    assert _payloads(events) == [MSG2]
    assert decoder.buffered_bytes == 0
