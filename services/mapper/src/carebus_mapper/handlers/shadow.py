"""Shadow replay: run the current and a candidate rule set over a window of the recorded
VALIDATED stream and report the differences. Publishes nothing and stores nothing.

Both rule sets go through the same code as the stage (``map_event``), each with its own
in-memory fencing that starts empty at the window's start: an appointment whose earlier
events lie before the window is seen with ``previous_status = none`` by both.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from carebus_contracts.subjects import STREAM_SUBJECTS, STREAM_VALIDATED
from carebus_mapper.adapters.stream_window import Window, read_window
from carebus_mapper.domain.fencing import FenceView
from carebus_mapper.domain.rules import RuleSet
from carebus_mapper.domain.shadow import Comparison, ShadowReport
from carebus_mapper.handlers.stage import Clock, decode_validated, map_event, utc_now
from carebus_shared.jetstream.stage import Reject


async def shadow_replay(
    js: JetStreamContext,
    current: RuleSet,
    candidate: RuleSet,
    window: Window,
    *,
    max_examples: int = 5,
    clock: Clock = utc_now,
    stream: str = STREAM_VALIDATED,
) -> ShadowReport:
    report = ShadowReport(current.version, candidate.version, max_examples=max_examples)
    current_view, candidate_view = FenceView({}), FenceView({})
    now = clock()
    async for msg in read_window(js, stream, STREAM_SUBJECTS[stream], window):
        sequence = msg.metadata.sequence.stream
        event = decode_validated(msg)
        if isinstance(event, Reject):
            report.add(
                Comparison(
                    sequence,
                    msg.subject,
                    event.event_id or "?",
                    "invalid",
                    "invalid",
                    None,
                    None,
                    None,
                    None,
                )
            )
            continue
        a = map_event(current, event, current_view, now)
        b = map_event(candidate, event, candidate_view, now)
        report.add(
            Comparison(
                sequence=sequence,
                event_type=event.event_type.removeprefix("validated."),
                source_event_id=event.original.event_id,
                current=a.label,
                candidate=b.label,
                current_journal=a.mapped.journal if a.mapped else None,
                candidate_journal=b.mapped.journal if b.mapped else None,
                current_rule=a.rule_id,
                candidate_rule=b.rule_id,
            )
        )
    return report
