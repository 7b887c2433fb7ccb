"""Prometheus metrics of MLLP listeners.

Labels carry only small closed sets (ACK codes, failure kinds), never peers, message
ids or patient data.  Pass a private ``CollectorRegistry`` in tests; production code
uses :func:`default_metrics`, registered once on the global registry.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# MSA-1 codes plus the two ways a message ends without an ACK.
REFUSALS: Final = ("peer", "limit", "tls")
RESULTS: Final = ("aa", "ae", "ar", "ca", "ce", "cr", "no_ack_error", "no_ack_timeout", "unknown")


class MllpMetrics:
    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.messages = Counter(
            "carebus_mllp_messages_total",
            "MLLP messages handled, by outcome (MSA-1 code, or why no ACK was sent).",
            ["result"],
            registry=registry,
        )
        self.handle_seconds = Histogram(
            "carebus_mllp_handle_seconds",
            "Time from a complete frame to its ACK being written (handler included).",
            registry=registry,
        )
        self.connections = Counter(
            "carebus_mllp_connections_total", "MLLP connections accepted.", registry=registry
        )
        self.open_connections = Gauge(
            "carebus_mllp_open_connections", "MLLP connections currently open.", registry=registry
        )
        self.idle_timeouts = Counter(
            "carebus_mllp_idle_timeouts_total",
            "Connections closed because the peer sent nothing for too long.",
            registry=registry,
        )
        self.message_deadlines = Counter(
            "carebus_mllp_message_deadline_timeouts_total",
            "Connections closed because a message did not complete within its deadline "
            "(a slow trickle).",
            registry=registry,
        )
        self.refused_connections = Counter(
            "carebus_mllp_refused_connections_total",
            "Connections refused: peer not on the allow-list, connection cap reached, or a "
            "failed TLS handshake.",
            ["reason"],
            registry=registry,
        )
        self.garbage_bytes = Counter(
            "carebus_mllp_garbage_bytes_total",
            "Bytes skipped outside MLLP frames (or in abandoned frames).",
            registry=registry,
        )
        self.oversized_frames = Counter(
            "carebus_mllp_oversized_frames_total",
            "Frames over the size limit (answered with AR, or the connection closed).",
            registry=registry,
        )
        self._refused = {r: self.refused_connections.labels(reason=r) for r in REFUSALS}
        # One child per result, looked up once: ``labels()`` per message is measurable CPU.
        self._results = {result: self.messages.labels(result=result) for result in RESULTS}

    def refused(self, reason: str) -> None:
        self._refused[reason].inc()

    def message(self, result: str) -> None:
        self._results.get(result, self._results["unknown"]).inc()


_default: MllpMetrics | None = None


def default_metrics() -> MllpMetrics:
    """The process-wide instance on the global registry (created on first use)."""
    global _default
    if _default is None:
        _default = MllpMetrics()
    return _default
