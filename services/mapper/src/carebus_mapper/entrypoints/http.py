"""HTTP routes of the mapper: ``POST /v1/preview``.

Rule owners post a validated event (the JSON as it travels on the VALIDATED stream) and get
back the journal the current rules produce for it and the rule that matched. Nothing is
published and nothing is stored. Answers: 200 with the journal (or with the deliberate
"no journal" and its rule); 422 problem when the event would become a mapping exception;
400 problem when the body is not a validated event; 503 while the database is unreachable.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from carebus_contracts.erp import JournalEntryRequested
from carebus_mapper.domain.journal import idempotency_key
from carebus_mapper.domain.rules import RuleSet
from carebus_mapper.handlers.preview import PreviewRefused, preview
from carebus_mapper.handlers.stage import LoadApplied
from carebus_shared.auth.scopes import MAPPING_READ, requires
from carebus_shared.http.problems import problem

MAX_PREVIEW_BYTES = 1024 * 1024  # one validated event


class RuleInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    file: str
    description: str
    priority: int


class FenceInfo(msgspec.Struct, frozen=True, kw_only=True):
    entity_key: str
    entity_version: int
    applied_version: int | None
    decision: str
    """apply, duplicate or stale: what the stage would decide if the event arrived now."""
    previous_status: str | None


class PreviewBody(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    rule_set_version: str
    rule: RuleInfo | None
    idempotency_key: str
    journal: JournalEntryRequested | None
    fencing: FenceInfo | None


def preview_routes(rules: RuleSet, load_applied: LoadApplied | None) -> list[HTTPRouteHandler]:
    @post(
        "/v1/preview",
        tags=["mapping"],
        status_code=200,
        request_max_body_size=MAX_PREVIEW_BYTES,
        **requires(MAPPING_READ),
    )
    async def preview_event(request: Request[Any, Any, Any]) -> Response[Any]:
        """Map one validated event with the current rules, without publishing it."""
        try:
            result = await preview(rules, await request.body(), load_applied)
        except PreviewRefused as exc:
            return problem(400, "Not a validated event", str(exc), reason=exc.reason, path=exc.path)
        event, outcome = result.event, result.result
        rule = rules.rule(outcome.rule_id) if outcome.rule_id else None
        if outcome.rejection is not None:
            rejection = outcome.rejection
            return problem(
                422,
                "The event would become a mapping exception",
                rejection.message,
                category=rejection.category,
                reason=rejection.reason,
                path=rejection.path,
                offending_value=rejection.offending_value,
                rule=rule.id if rule else None,
                rule_set_version=rules.version,
            )
        fencing = (
            FenceInfo(
                entity_key=event.entity_key,
                entity_version=event.entity_version,
                applied_version=result.applied_version,
                decision=result.fence_decision,
                previous_status=result.previous_status,
            )
            if result.fence_decision is not None
            else None
        )
        body = PreviewBody(
            outcome=outcome.label,
            rule_set_version=rules.version,
            rule=RuleInfo(
                id=rule.id, file=rule.file, description=rule.description, priority=rule.priority
            )
            if rule
            else None,
            idempotency_key=idempotency_key(event.original.event_id, rules.version),
            journal=outcome.mapped.journal if outcome.mapped else None,
            fencing=fencing,
        )
        return Response(msgspec.json.encode(body), media_type="application/json")

    return [preview_event]
