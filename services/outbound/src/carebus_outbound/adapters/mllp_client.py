"""Sending one HL7 v2 message over MLLP and reading its ACK (the shared framing), bounded
in time; every failure to get an ACK is an ``Unreachable`` the feed retries."""

from __future__ import annotations

import asyncio
import contextlib

from carebus_outbound.domain.delivery import Accepted, Answer, Refused, Unreachable
from carebus_shared.hl7.ack import ack_code_of
from carebus_shared.mllp.framing import Frame, MllpDecoder, frame

MAX_ACK_BYTES = 64 * 1024
_REFUSALS = {"AE": "receiver_error", "CE": "receiver_error", "AR": "receiver_reject",
             "CR": "receiver_reject"}  # fmt: skip


class MllpClient:
    def __init__(self, host: str, port: int, connect_timeout_s: float, answer_timeout_s: float):
        self.host, self.port = host, port
        self._connect_s, self._answer_s = connect_timeout_s, answer_timeout_s

    async def send(self, message: bytes) -> Answer:
        """One connection per message: no half-read ACK of an earlier message can ever be
        taken for this one's."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self._connect_s
            )
        except (OSError, TimeoutError):
            return Unreachable("connect")
        try:
            writer.write(frame(message))
            await writer.drain()
            ack = await asyncio.wait_for(_read_frame(reader), self._answer_s)
        except TimeoutError:
            return Unreachable("timeout")
        except OSError:
            return Unreachable("closed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return _answer(ack)


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    decoder = MllpDecoder(MAX_ACK_BYTES)
    while True:  # bounded by the caller's timeout and the connection closing
        data = await reader.read(4096)
        if not data:
            return None
        for event in decoder.feed(data):
            if isinstance(event, Frame):
                return event.payload
            return None  # an oversized answer is no ACK


def _answer(ack: bytes | None) -> Answer:
    if ack is None:
        return Unreachable("closed")
    code = ack_code_of(ack)
    if code in ("AA", "CA"):
        return Accepted(code)
    if code in _REFUSALS:
        return Refused(code, _REFUSALS[code], _msa_text(ack))
    return Unreachable("bad_answer")


def _msa_text(ack: bytes) -> str:
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA"):
            fields = segment.decode(errors="replace").split("|")
            return fields[3] if len(fields) > 3 else ""
    return ""
