"""The DFT^P03/P11 MLLP listener: frames in, ACKs out, started and stopped with the service.

AA only after every event of the message was confirmed by JetStream; AE/AR (with an ERR
segment naming the field) for a message that cannot be accepted, after it was kept in the
exception store. When publishing fails the handler raises, so the shared server sends no ACK
and the sender retries; the retry is harmless because event ids come from the message.
"""

from __future__ import annotations

import logging

from carebus_billing_adapter.config import Settings
from carebus_billing_adapter.handlers.dft import DftAccepted, DftHandler
from carebus_shared.hl7.ack import ACK_ACCEPT, build_ack
from carebus_shared.mllp import MllpHandler, MllpServer
from carebus_shared.mllp.listener import listen_once_started
from carebus_shared.runtime.service import ServiceRuntime

log = logging.getLogger(__name__)


def dft_mllp_handler(handler: DftHandler) -> MllpHandler:
    async def handle(raw: bytes) -> bytes:
        outcome = await handler.handle(raw)
        if isinstance(outcome, DftAccepted):
            return build_ack(outcome.message, ACK_ACCEPT)
        error = outcome.error
        log.warning("DFT rejected (%s): %s", error.reason, error.location)
        return build_ack(outcome.inbound, error.ack_code, error=error)

    return handle


def dft_listener(runtime: ServiceRuntime, handler: DftHandler, settings: Settings) -> MllpServer:
    return listen_once_started(runtime, dft_mllp_handler(handler), settings)
