"""Composition root of the ops console: the one place that wires its parts together.

- The tracker reads every stream through durables of its own (never a stage's), and stores
  each entity's steps and links (handlers/track.py).
- Background loops recompute the business gauges from its tables and poll JetStream for
  every durable's and stream's state.
- HTTP answers traces, the per-site table, the pipeline view and the rebuild.
"""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from nats.js import JetStreamContext

from carebus_ops.adapters.figures_store import Thresholds
from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_ops.entrypoints import subscribers
from carebus_ops.entrypoints.http import ops_routes, trace_routes
from carebus_ops.handlers.figures import OpsFigures
from carebus_ops.handlers.pipeline import Pipeline
from carebus_ops.handlers.rebuild import Rebuild
from carebus_ops.handlers.track import Tracker
from carebus_shared.runtime.service import ServiceRuntime

HOUR_S = 3600.0


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])

    def pool() -> asyncpg.Pool:
        return runtime.pool

    def js() -> JetStreamContext:
        return runtime.js

    metrics = OpsMetrics(runtime.registry)
    tracker = Tracker(pool, metrics)
    consumers = subscribers.subscribe(
        runtime, tracker, settings.batch_size, settings.batch_max_wait_s
    )
    thresholds = Thresholds(
        completed_without_charge_s=settings.completed_without_charge_h * HOUR_S,
        charges_unposted_s=settings.charges_unposted_h * HOUR_S,
        journals_unconfirmed_s=settings.journals_unconfirmed_h * HOUR_S,
    )
    figures = OpsFigures(pool, metrics, thresholds, settings.configured_sites())
    pipeline = Pipeline(js, metrics, settings.services(), settings.ready_timeout_s)
    rebuild = Rebuild(pool, js, consumers, settings.shutdown_grace_s)
    runtime.background.every("ops-figures", figures.refresh, settings.figures_refresh_s)
    runtime.background.every("ops-jetstream", pipeline.poll, settings.jetstream_poll_s)

    routes = [
        *trace_routes(pool, settings.trace_max_linked),
        *ops_routes(figures, pipeline, rebuild),
        # The shared exceptions API (carebus_shared/exceptions/api.py, built in parallel)
        # mounts here: its GET/POST /v1/exceptions route builders, over the shared store.
    ]
    return runtime.http_app(routes)
