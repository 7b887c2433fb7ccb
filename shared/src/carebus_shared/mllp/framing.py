"""MLLP framing: ``<VT> message <FS><CR>``, decoded incrementally with bounded memory.

The decoder is sans-I/O: feed it whatever ``read()`` returned and it yields complete
frames, so splits at any byte boundary and several frames per read need no special
cases in the server.  Tolerances, each counted or documented:

* bytes outside a frame are garbage: dropped and counted (CR/LF between frames are
  normal padding and not counted);
* a start block inside an unfinished frame means the sender gave up on it: the partial
  frame is dropped as garbage and a new one starts;
* ``<FS>`` without the trailing ``<CR>`` ends the frame anyway (some senders omit it).
* a frame larger than ``max_message_bytes`` is reported once with its first bytes (for a
  NAK) and the rest of it is discarded up to its end block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c"
CARRIAGE_RETURN: Final = b"\r"
_PADDING: Final = b"\r\n"
HEAD_BYTES: Final = 4096


def frame(payload: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    head: bytes
    """The first bytes of the frame (enough for its MSH, usually)."""


class MllpDecoder:
    """Incremental MLLP decoder; ``garbage_bytes`` counts what was skipped."""

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._discarding = False
        self._swallow_cr = False
        self.garbage_bytes = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    @property
    def mid_frame(self) -> bool:
        """A frame has started and not ended yet."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame | OversizedFrame]:
        events: list[Frame | OversizedFrame] = []
        pos = 0
        if self._swallow_cr and data[:1] == CARRIAGE_RETURN:
            pos = 1
        self._swallow_cr = False
        while pos < len(data):
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                skipped = data[pos:] if start < 0 else data[pos:start]
                self.garbage_bytes += len(skipped.translate(None, _PADDING))
                if start < 0:
                    break
                self._in_frame, self._discarding = True, False
                self._buffer.clear()
                pos = start + 1
                continue
            end = data.find(END_BLOCK, pos)
            restart = data.find(START_BLOCK, pos, end if end >= 0 else len(data))
            if restart >= 0:
                # The sender abandoned the frame and started another one.
                self.garbage_bytes += len(self._buffer) + (restart - pos) + 1
                self._in_frame = False
                self._buffer.clear()
                pos = restart
                continue
            chunk = data[pos:] if end < 0 else data[pos:end]
            self._append(chunk, events)
            if end < 0:
                break
            if not self._discarding:
                events.append(Frame(bytes(self._buffer)))
            self._buffer.clear()
            self._in_frame = self._discarding = False
            pos = end + 1
            if pos == len(data):
                self._swallow_cr = True
            elif data[pos : pos + 1] == CARRIAGE_RETURN:
                pos += 1
        return events

    def _append(self, chunk: bytes, events: list[Frame | OversizedFrame]) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(chunk) <= self._max:
            self._buffer += chunk
            return
        head = bytes((self._buffer + chunk)[:HEAD_BYTES])
        events.append(OversizedFrame(head))
        self._buffer.clear()
        self._discarding = True
