from __future__ import annotations

import json
import logging

from carebus_shared.logs import JsonFormatter, bind_event


def _format(record_msg: str, **extra: object) -> dict[str, object]:
    logger = logging.getLogger("test.logs")
    record = logger.makeRecord("test.logs", logging.INFO, __file__, 1, record_msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    parsed: dict[str, object] = json.loads(JsonFormatter("mapper").format(record))
    return parsed


def test_lines_carry_the_ids_of_the_event_being_handled() -> None:
    with bind_event("ev-1", correlation_id="corr-9", causation_id="ev-0"):
        line = _format("journal built", stage="mapper")
    assert line["event_id"] == "ev-1"
    assert line["correlation_id"] == "corr-9"
    assert line["causation_id"] == "ev-0"
    assert line["service"] == "mapper"
    assert line["stage"] == "mapper"
    assert line["msg"] == "journal built"


def test_ids_do_not_leak_past_the_block() -> None:
    with bind_event("ev-1"):
        pass
    assert "event_id" not in _format("later")
