"""The DFT^P03/P11 MLLP listener: frames in, ACKs out, started and stopped with the service.

AA only after every event of the message was confirmed by JetStream; AE/AR (with an ERR
segment naming the field) for a message that cannot be accepted, after it was kept in the
exception store. When publishing fails the handler raises, so the shared server sends no ACK
and the sender retries; the retry is harmless because event ids come from the message.
"""

from __future__ import annotations

import logging

from carebus_billing_adapter.handlers.dft import DftAccepted, DftHandler
from carebus_shared.hl7.ack import ACK_ACCEPT, build_ack
from carebus_shared.mllp import MllpHandler, MllpMetrics, MllpServer

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


class DftListener:
    """Owns the MLLP server; ``start``/``stop`` are the runtime's on_started/on_stopping hooks,
    so no frame is accepted before JetStream and PostgreSQL are up."""

    def __init__(self, handler: DftHandler, host: str, port: int, metrics: MllpMetrics) -> None:
        self._server = MllpServer(dft_mllp_handler(handler), host=host, port=port, metrics=metrics)
        self._started = False

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._server.close()
