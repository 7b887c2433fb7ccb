"""Composition root of the mapper: the one place that wires its parts together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from litestar import Litestar

from carebus_mapper.adapters.fence_store import load_applied, save_applied
from carebus_mapper.adapters.metrics import MapperMetrics
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_mapper.domain.fencing import Applied, EntityRef
from carebus_mapper.entrypoints import subscribers
from carebus_mapper.entrypoints.http import preview_routes
from carebus_mapper.handlers.stage import BatchMapper
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings) -> Litestar:
    # Invalid rules stop the service here, with every problem named (file, rule, field).
    rules = load_rule_set(settings.rules_dir or None)
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    metrics = MapperMetrics(runtime.registry)
    metrics.rule_set.labels(rules.version).set(1)

    async def load(refs: Sequence[EntityRef]) -> Mapping[EntityRef, Applied]:
        async with runtime.pool.acquire() as conn:
            return await load_applied(conn, refs)

    async def save(applied: Mapping[EntityRef, Applied]) -> None:
        async with runtime.pool.acquire() as conn:
            await save_applied(conn, applied)

    mapper = BatchMapper(rules, load, save, metrics)
    subscribers.subscribe(runtime, mapper, settings)
    return runtime.http_app(preview_routes(rules, load))
