"""The SIU MLLP listener: frames in, ACKs out (AA once JetStream confirmed the event)."""

from __future__ import annotations

from carebus_scheduling_adapter.config import Settings
from carebus_scheduling_adapter.handlers.hl7_messages import Hl7Messages
from carebus_shared.mllp import MllpServer
from carebus_shared.mllp.listener import listen_once_started
from carebus_shared.runtime.service import ServiceRuntime


def siu_listener(runtime: ServiceRuntime, hl7: Hl7Messages, settings: Settings) -> MllpServer:
    return listen_once_started(runtime, hl7.mllp_handler(), settings)
