"""What marks a replayed copy, and where it came from (pure).

A copy is the stored message byte for byte, with its headers, under a new ``Nats-Msg-Id``
(so the stage's durable consumer sees it as new, and the stage's own idempotency decides)
and two more headers: ``Carebus-Replay`` (the replay's id) and ``Carebus-Replay-Of``
(``<stream>:<sequence>`` of the original). A stage that records a failure of a copy keys it
by the original (``origin_key``), so replaying a failure already recorded adds no record.
"""

from __future__ import annotations

from collections.abc import Mapping

REPLAY = "Carebus-Replay"
REPLAY_OF = "Carebus-Replay-Of"


def replay_msg_id(replay_id: int, stream: str, seq: int) -> str:
    """The copy's ``Nats-Msg-Id``: a chunk published again within one replay is a duplicate
    JetStream drops; another replay of the same message is a new message."""
    return f"replay-{replay_id}-{stream}-{seq}"


def copy_headers(
    headers: Mapping[str, str] | None, replay_id: int, stream: str, seq: int
) -> dict[str, str]:
    """The original's headers plus the replay's marks (the new message id is set when
    publishing)."""
    return {**(headers or {}), REPLAY: str(replay_id), REPLAY_OF: f"{stream}:{seq}"}


def is_copy(headers: Mapping[str, str] | None) -> bool:
    return headers is not None and REPLAY in headers


def origin_key(stream: str, seq: int, headers: Mapping[str, str] | None) -> str:
    """``<stream>:<sequence>`` of the stored message this one is, or is a copy of."""
    of = (headers or {}).get(REPLAY_OF, "")
    name, _, number = of.rpartition(":")
    if name and number.isdigit():
        return f"{name}:{number}"
    return f"{stream}:{seq}"
