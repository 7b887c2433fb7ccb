"""The web console's use cases: what each page shows, and the actions a person takes there.

Reads come from the parts the JSON API already uses (the pipeline view, the tracker, the
business figures, the exception store) and from the validator's quarantine API; actions go
through the shared exceptions use cases and the validator's routes, naming their actor.
Every action is logged with its actor and outcome, never with a payload.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import asyncpg

from carebus_ops.adapters import console_store
from carebus_ops.adapters.console_store import OpenCount
from carebus_ops.adapters.consumer_rates import ConsumerRates
from carebus_ops.adapters.quarantine_client import (
    ParkedPage,
    QuarantineClient,
    QuarantineUnavailable,
    Refused,
)
from carebus_ops.domain.trace import Trace
from carebus_ops.handlers.figures import OpsFigures, SitesBody
from carebus_ops.handlers.pipeline import Pipeline
from carebus_ops.handlers.trace import trace
from carebus_shared.exceptions import query, store
from carebus_shared.exceptions.actions import ExceptionActions
from carebus_shared.exceptions.redrive import MAX_RECORD_ID, RedriveOutcome, RedriveResult

log = logging.getLogger("carebus.ops.console")

PAGE_SIZE: Final = 50
_BACK: Final = [("quarantine", "/console/quarantine")]
_OK_OUTCOMES: Final = (RedriveOutcome.REDRIVEN, RedriveOutcome.DISCARDED)


@dataclass(frozen=True, slots=True)
class StageRow:
    stream: str
    consumer: str
    service: str
    rate_per_s: float | None
    pending: int
    ack_pending: int
    redelivered: int
    oldest_unacked_age_s: float
    ready: bool | None  # None: no service of that name is configured
    ready_detail: str

    @property
    def backlog(self) -> int:
        return self.pending + self.ack_pending


@dataclass(frozen=True, slots=True)
class PipelinePage:
    stages: list[StageRow]
    tracker: list[StageRow]
    streams: list[Any]
    services: list[Any]


@dataclass(frozen=True, slots=True)
class ExceptionsPage:
    summary: list[OpenCount]
    page: query.Page


@dataclass(frozen=True, slots=True)
class RecordPage:
    record: dict[str, Any]
    history: list[dict[str, Any]]
    payload: str | None  # the kept input as text, only when asked for
    traced: tuple[str, str] | None  # the entity the tracker filed its event under


@dataclass(frozen=True, slots=True)
class Done:
    """What came of an action, as the result page tells it."""

    ok: bool
    title: str
    message: str
    links: list[tuple[str, str]] = field(default_factory=list)


def trace_url(kind: str, entity_id: str) -> str:
    return f"/console/trace/{quote(kind, safe='')}/{quote(entity_id, safe='')}"


def find_url(text: str) -> str:
    return f"/console/find?q={quote(text, safe='')}"


def _service_of(durable: str, services: dict[str, Any]) -> str:
    """The service a durable belongs to: the longest service name it starts with."""
    names = [name for name in services if durable.startswith(name)]
    return max(names, key=len) if names else ""


def _outcome_title(result: RedriveResult, verb: str) -> str:
    return {
        RedriveOutcome.REDRIVEN: "Re-driven",
        RedriveOutcome.DISCARDED: "Discarded",
        RedriveOutcome.REJECTED: "Rejected again: the record stays open",
        RedriveOutcome.NOT_FOUND: "No such exception record",
        RedriveOutcome.NOT_OPEN: "Not open any more",
        RedriveOutcome.NOT_REDRIVABLE_HERE: f"Cannot {verb} this record here",
        RedriveOutcome.UNAVAILABLE: "A dependency is unavailable; retry",
    }[result.outcome]


class Console:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        pipeline: Pipeline,
        rates: ConsumerRates,
        figures: OpsFigures,
        actions: ExceptionActions,
        quarantine: QuarantineClient,
        max_linked: int,
    ) -> None:
        self._pool = pool
        self._pipeline = pipeline
        self._rates = rates
        self._figures = figures
        self._actions = actions
        self._quarantine = quarantine
        self._max_linked = max_linked

    # -- pages --------------------------------------------------------------------------
    async def pipeline_page(self) -> PipelinePage:
        view = await self._pipeline.view()
        ready = {s.service: s for s in view.services}
        rows: list[tuple[bool, StageRow]] = []
        for c in view.consumers:
            service = _service_of(c.consumer, ready)
            known = ready.get(service)
            rows.append(
                (
                    c.tracker,
                    StageRow(
                        stream=c.stream,
                        consumer=c.consumer,
                        service=service,
                        rate_per_s=self._rates.per_second(c.consumer),
                        pending=c.pending,
                        ack_pending=c.ack_pending,
                        redelivered=c.redelivered,
                        oldest_unacked_age_s=c.oldest_unacked_age_s,
                        ready=None if known is None else known.ready,
                        ready_detail="" if known is None else known.detail,
                    ),
                )
            )
        return PipelinePage(
            stages=[row for tracker, row in rows if not tracker],
            tracker=[row for tracker, row in rows if tracker],
            streams=list(view.streams),
            services=list(view.services),
        )

    async def exceptions_page(
        self, flt: query.ExceptionFilter, cursor: str | None
    ) -> ExceptionsPage:
        """Raises query.InvalidQuery for a cursor this console did not give out."""
        async with self._pool().acquire() as conn:
            summary = await console_store.open_by_site_and_reason(conn)
            page = await query.search(conn, flt, cursor, PAGE_SIZE)
        return ExceptionsPage(summary, page)

    async def record_page(self, record_id: int, include_payload: bool) -> RecordPage | None:
        if not 0 < record_id <= MAX_RECORD_ID:
            return None
        async with self._pool().acquire() as conn:
            row = await store.get(conn, record_id)
            if row is None:
                return None
            history = await store.history(conn, record_id)
            event_id = row.get("event_id")
            traced = await console_store.entity_of_event(conn, event_id) if event_id else None
        raw = row.pop("raw", None)
        row["raw_bytes"] = None if raw is None else len(raw)
        row.pop("headers", None)
        offending = row.pop("offending_value", None)
        payload = None
        if include_payload and raw is not None:
            payload = bytes(raw).decode("utf-8", "replace")
            if offending:
                payload = f"offending value: {offending}\n\n{payload}"
        for action in history:
            action.pop("sent_body", None)
        return RecordPage(row, history, payload, traced)

    async def trace(self, kind: str, entity_id: str, actor: str) -> Trace | None:
        """Raises handlers.trace.UnknownKind for a kind the tracker does not follow."""
        return await trace(self._pool, kind, entity_id, self._max_linked, actor=actor)

    async def find(self, text: str) -> str | None:
        """Where ``text`` leads: an exception record (#id), an entity, or an event's entity."""
        text = text.strip()
        if not text:
            return None
        digits = text.removeprefix("#")
        async with self._pool().acquire() as conn:
            is_record = digits.isdigit() and 0 < int(digits) <= MAX_RECORD_ID
            if is_record and await store.get(conn, int(digits)) is not None:
                return f"/console/exceptions/{int(digits)}"
            kinds = await console_store.kinds_of_id(conn, text)
            if kinds:
                return trace_url(kinds[0], text)
            entity = await console_store.entity_of_event(conn, text)
        return None if entity is None else trace_url(*entity)

    async def sites(self) -> SitesBody:
        return await self._figures.sites()

    async def quarantine_page(
        self, site: str | None, reason: str | None, entity_key: str | None, cursor: int | None
    ) -> ParkedPage | Refused:
        """Raises QuarantineUnavailable when the validator does not answer."""
        return await self._quarantine.page(
            site=site, reason=reason, entity_key=entity_key, cursor=cursor, limit=PAGE_SIZE
        )

    # -- actions ------------------------------------------------------------------------
    def _logged(self, action: str, target: int, actor: str, outcome: str) -> None:
        log.info(
            "console action",
            extra={"action": action, "target": target, "actor": actor, "outcome": outcome},
        )

    async def redrive(self, record_id: int, corrected: bytes | None, actor: str) -> Done:
        result = await self._actions.redrive(record_id, corrected, actor)
        self._logged("exception_redrive", record_id, actor, str(result.outcome))
        links = [(f"exception #{record_id}", f"/console/exceptions/{record_id}")]
        links += [(f"trace event {event_id}", find_url(event_id)) for event_id in result.event_ids]
        message = result.message
        if result.report.get("rule"):
            message += f" ({result.report.get('path', '$')}: {result.report['rule']})"
        return Done(
            result.outcome in _OK_OUTCOMES, _outcome_title(result, "re-drive"), message, links
        )

    async def discard(self, record_id: int, reason: str, actor: str) -> Done:
        result = await self._actions.discard(record_id, reason, actor)
        self._logged("exception_discard", record_id, actor, str(result.outcome))
        links = [(f"exception #{record_id}", f"/console/exceptions/{record_id}")]
        return Done(
            result.outcome in _OK_OUTCOMES, _outcome_title(result, "discard"), result.message, links
        )

    async def _ask_validator(
        self, action: str, parked_id: int, actor: str, call: Awaitable[dict[str, Any] | Refused]
    ) -> dict[str, Any] | Done:
        """The validator's answer, or the Done saying it refused or did not answer."""
        try:
            answer = await call
        except QuarantineUnavailable as exc:
            self._logged(action, parked_id, actor, "unavailable")
            return Done(False, "The validator is unavailable; retry", str(exc), list(_BACK))
        if isinstance(answer, Refused):
            self._logged(action, parked_id, actor, f"refused {answer.status}")
            return Done(False, answer.title, answer.detail, list(_BACK))
        return answer

    async def release_parked(self, parked_id: int, actor: str) -> Done:
        answer = await self._ask_validator(
            "quarantine_release", parked_id, actor, self._quarantine.release(parked_id, actor)
        )
        if isinstance(answer, Done):
            return answer
        released = list(answer.get("released", []))
        self._logged("quarantine_release", parked_id, actor, f"released {len(released)}")
        if parked_id in released:
            note = f"parked event {parked_id} re-validated and released"
            if len(released) > 1:
                note += f", with {len(released) - 1} later event(s) of its entity"
            return Done(True, "Released", note, list(_BACK))
        return Done(
            False,
            "Still parked",
            f"parked event {parked_id} still does not validate (or waits behind an earlier "
            "event of its entity); fix the master data it waits for, then release it",
            list(_BACK),
        )

    async def discard_parked(self, parked_id: int, note: str, actor: str) -> Done:
        answer = await self._ask_validator(
            "quarantine_discard", parked_id, actor,
            self._quarantine.discard(parked_id, actor, note),
        )  # fmt: skip
        if isinstance(answer, Done):
            return answer
        self._logged("quarantine_discard", parked_id, actor, "discarded")
        return Done(True, "Discarded", f"parked event {parked_id} discarded", list(_BACK))
