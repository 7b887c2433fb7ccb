"""HTTP routes of the ops console (JSON; documented in its OpenAPI at /schema):

- ``GET /v1/trace/{kind}/{id}``: one entity's timeline with its linked entities; 400 problem
  for a kind the tracker does not follow, 404 problem for an entity it never saw. Each look
  is audited with the ``X-Carebus-Actor``.
- ``GET /v1/sites``: per-site sync health (the business figures).
- ``GET /v1/pipeline``: every durable's backlog, every stream's size, each service's readiness.
- ``POST /v1/tracker/rebuild``: rebuild the tracker from the streams (recorded with the client).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from carebus_ops.domain.trace import Trace
from carebus_ops.handlers.figures import OpsFigures, SitesBody
from carebus_ops.handlers.pipeline import Pipeline, PipelineBody
from carebus_ops.handlers.rebuild import Rebuild, RebuildBody
from carebus_ops.handlers.trace import UnknownKind, trace
from carebus_shared.auth.principal import actor_of
from carebus_shared.auth.scopes import OPS_READ, OPS_WRITE, requires
from carebus_shared.http.problems import problem

_MAX_ID = 200


def _json(body: msgspec.Struct) -> Response[Any]:
    return Response(msgspec.json.encode(body), media_type="application/json")


def trace_routes(pool: Any, max_linked: int) -> list[HTTPRouteHandler]:
    @get(
        "/v1/trace/{kind:str}/{entity_id:str}",
        tags=["trace"],
        summary="An entity's whole timeline, with its linked entities",
        responses={},
        **requires(OPS_READ),
    )
    async def trace_entity(
        request: Request[Any, Any, Any], kind: FromPath[str], entity_id: FromPath[str]
    ) -> Response[Any]:
        if len(entity_id) > _MAX_ID:
            return problem(400, "Bad Request", f"the id is longer than {_MAX_ID} characters")
        try:
            found: Trace | None = await trace(
                pool, kind, entity_id, max_linked, actor=actor_of(request)
            )
        except UnknownKind as exc:
            return problem(400, "Unknown entity kind", str(exc), kind_field="kind")
        if found is None:
            return problem(404, "Not Found", f"the tracker has seen no {kind} with this id")
        return _json(found)

    return [trace_entity]


def ops_routes(figures: OpsFigures, pipeline: Pipeline, rebuild: Rebuild) -> list[HTTPRouteHandler]:
    @get(
        "/v1/sites",
        tags=["sites"],
        summary="Per-site sync health (business figures)",
        **requires(OPS_READ),
    )
    async def sites() -> SitesBody:
        return await figures.sites()

    @get(
        "/v1/pipeline",
        tags=["pipeline"],
        summary="Backlog per durable, streams, readiness",
        **requires(OPS_READ),
    )
    async def pipeline_view() -> PipelineBody:
        return await pipeline.view()

    @post(
        "/v1/tracker/rebuild",
        tags=["tracker"],
        status_code=202,
        summary="Rebuild the tracker from the streams (it catches up in the background)",
        request_max_body_size=1024,
        **requires(OPS_WRITE),
    )
    async def rebuild_tracker(request: Request[Any, Any, Any]) -> RebuildBody:
        return await rebuild.run(actor_of(request))

    return [sites, pipeline_view, rebuild_tracker]
