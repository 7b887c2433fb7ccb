"""MLLP (minimal lower layer protocol) framing and asyncio listener for HL7 v2 feeds."""

from carebus_shared.mllp.framing import Frame, MllpDecoder, OversizedFrame, frame
from carebus_shared.mllp.hl7_handler import hl7_handler
from carebus_shared.mllp.metrics import MllpMetrics, default_metrics
from carebus_shared.mllp.server import MllpHandler, MllpLimits, MllpServer

__all__ = [
    "Frame",
    "MllpDecoder",
    "MllpHandler",
    "MllpLimits",
    "MllpMetrics",
    "MllpServer",
    "OversizedFrame",
    "default_metrics",
    "frame",
    "hl7_handler",
]
