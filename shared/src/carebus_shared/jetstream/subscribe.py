"""Options for binding a FastStream batch pull subscriber to a provisioned durable consumer.

- ``declare=False``: services bind to what `carebus provision` made; they never create or
  reconfigure streams, so replicas cannot race or drift.
- batch pull: one handler call per fetched batch, which amortises FastStream's costly
  per-message dispatch (docs/decisions/004).
- manual acks: the stage runner acks each message only after its outputs are confirmed.
- no decoding by FastStream: it would ``json.loads`` every body before our typed msgspec
  decoder runs again; handlers read ``message.raw_message`` instead.
"""

from __future__ import annotations

from typing import Any

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, PullSub

from carebus_shared.jetstream.topology import ConsumerSpec


async def _skip_decoding(_: Any) -> None:
    return None


def batch_pull_options(
    spec: ConsumerSpec, batch_size: int = 200, max_wait_s: float = 0.02
) -> dict[str, Any]:
    """Keyword arguments for ``router.subscriber(...)`` bound to ``spec``.

    ``max_wait_s`` bounds how long a batch waits to fill: it is the latency a quiet hop adds.
    """
    return {
        "subject": spec.filter_subjects[0],
        "stream": JStream(spec.stream, declare=False),
        "durable": spec.durable,
        "pull_sub": PullSub(batch_size=batch_size, timeout=max_wait_s, batch=True),
        "ack_policy": AckPolicy.MANUAL,
        "decoder": _skip_decoding,
    }
