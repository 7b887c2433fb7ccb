"""Status back, step one: the remittances' and the ERP's answers become status events on
their own subjects (published, then the input acked: the shared stage discipline)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from nats.aio.msg import Msg

from carebus_contracts import decode_message
from carebus_contracts.checks import ContractViolation, checked
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_outbound.domain.status import report
from carebus_shared.jetstream.publish import outgoing_for
from carebus_shared.jetstream.stage import Forward, Outcome, Reject


def _one(msg: Msg, now: dt.datetime) -> Outcome:
    try:
        source = decode_message(msg.subject, msg.data, msg.headers)
    except ContractDecodeError as exc:
        return Reject("contract", "undecodable_event", str(exc), path=exc.path)
    except UnknownContractError as exc:
        return Reject("contract", "unknown_contract", str(exc))
    event = report(source, now)
    if event is None:
        return Forward()
    try:
        return Forward([outgoing_for(checked(event))])
    except ContractViolation as exc:
        return Reject("contract", "status_not_reportable", str(exc), site=source.site)


async def report_statuses(msgs: Sequence[Msg]) -> list[Outcome]:
    now = dt.datetime.now(dt.UTC)
    return [_one(msg, now) for msg in msgs]
