"""Glue between the MLLP server and an adapter: parse, process, acknowledge.

``process`` maps the message and awaits the JetStream publish ack of the canonical
event (what it returns is ignored).  It raises :class:`Hl7Error` (usually
``Hl7MappingError``) for messages that cannot be mapped → AE, or AR for unsupported
type/event/version; anything else it raises (broker down, timeout) propagates so the
server sends no ACK and the sender retries.  AA therefore always means "published and
acknowledged by JetStream".

``on_reject(raw, message, error)`` (optional) keeps a rejected input before its AE/AR is
sent (``message`` is None when the bytes did not parse); if it raises, no ACK is sent, so
a rejection is never acknowledged before it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from carebus_shared.hl7.ack import ACK_ACCEPT, ACK_REJECT, build_ack
from carebus_shared.hl7.errors import Hl7Error, Hl7ParseError
from carebus_shared.hl7.message import Hl7Message, parse_message
from carebus_shared.mllp.server import MllpHandler

log = logging.getLogger(__name__)

OnReject: TypeAlias = Callable[[bytes, Hl7Message | None, Hl7Error], Awaitable[None]]


def hl7_handler(
    process: Callable[[Hl7Message], Awaitable[object]], on_reject: OnReject | None = None
) -> MllpHandler:
    async def handle(raw: bytes) -> bytes:
        try:
            message = parse_message(raw)
        except Hl7ParseError as exc:
            log.warning("unparseable HL7 message rejected: %s", exc)
            if on_reject is not None:
                await on_reject(raw, None, exc)
            return build_ack(raw, ACK_REJECT, error=exc)
        try:
            await process(message)
        except Hl7Error as exc:
            log.warning("HL7 %s rejected (%s): %s", message.control_id, exc.reason, exc)
            if on_reject is not None:
                await on_reject(raw, message, exc)
            return build_ack(message, exc.ack_code, error=exc)
        return build_ack(message, ACK_ACCEPT)

    return handle
