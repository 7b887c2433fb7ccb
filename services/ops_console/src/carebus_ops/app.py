"""Composition root of the ops console: the one place that wires its parts together.

- The tracker reads every stream through durables of its own (never a stage's), and stores
  each entity's steps and links (handlers/track.py).
- Background loops recompute the business gauges from its tables and poll JetStream for
  every durable's and stream's state.
- HTTP answers traces, the per-site table, the pipeline view and the rebuild, the shared
  exceptions API, and the web console (entrypoints/console.py) built on all of them.
"""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from nats.js import JetStreamContext

from carebus_ops.adapters.consumer_rates import ConsumerRates
from carebus_ops.adapters.figures_store import Thresholds
from carebus_ops.adapters.metrics import OpsMetrics
from carebus_ops.adapters.quarantine_client import QuarantineClient
from carebus_ops.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_ops.domain.charge_watch import ChargeWait
from carebus_ops.entrypoints import subscribers
from carebus_ops.entrypoints.console import console_routes, template_config
from carebus_ops.entrypoints.http import ops_routes, trace_routes
from carebus_ops.handlers.charge_watch import ChargeWatch
from carebus_ops.handlers.console import Console
from carebus_ops.handlers.figures import OpsFigures
from carebus_ops.handlers.pipeline import Pipeline
from carebus_ops.handlers.rebuild import Rebuild
from carebus_ops.handlers.track import Tracker
from carebus_shared.exceptions.actions import ExceptionActions
from carebus_shared.exceptions.adapter_client import AdapterRedriveClient
from carebus_shared.exceptions.api import exceptions_api_routes
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.runtime.service import ServiceRuntime

HOUR_S = 3600.0
RATE_SAMPLE_S = 5.0  # each pipeline durable's ack floor, for the console's rates


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])

    def pool() -> asyncpg.Pool:
        return runtime.pool

    def js() -> JetStreamContext:
        return runtime.js

    metrics = OpsMetrics(runtime.registry)
    tracker = Tracker(pool, metrics)
    consumers = subscribers.subscribe(
        runtime, tracker, settings.batch_size, settings.batch_max_wait_s, settings.batch_linger_s
    )
    charge_wait = ChargeWait.parse(
        settings.completed_without_charge_h, settings.completed_without_charge_site_h
    )
    thresholds = Thresholds(
        charge_wait=charge_wait,
        charges_unposted_s=settings.charges_unposted_h * HOUR_S,
        journals_unconfirmed_s=settings.journals_unconfirmed_h * HOUR_S,
    )
    figures = OpsFigures(pool, metrics, thresholds, settings.configured_sites())
    pipeline = Pipeline(js, metrics, settings.services(), settings.ready_timeout_s)
    rebuild = Rebuild(pool, js, consumers, settings.shutdown_grace_s)
    runtime.background.every("ops-figures", figures.refresh, settings.figures_refresh_s)
    # Completed without charge: work items and exception records (docs/decisions/025).
    watch = ChargeWatch(pool, charge_wait)
    runtime.background.every("ops-charge-watch", watch.sweep, settings.figures_refresh_s)
    runtime.background.every("ops-jetstream", pipeline.poll, settings.jetstream_poll_s)
    rates = ConsumerRates(js, TOPOLOGY)
    runtime.background.every("ops-rates", rates.sample, RATE_SAMPLE_S)

    key = settings.service_key or None
    adapters = AdapterRedriveClient(
        settings.adapter_urls(), settings.downstream_timeout_s, service_key=key
    )
    actions = ExceptionActions(pool, js, adapters)
    quarantine = QuarantineClient(
        settings.validator_url, settings.downstream_timeout_s, service_key=key
    )
    runtime.on_stopping += [adapters.aclose, quarantine.aclose]
    console = Console(
        pool, pipeline, rates, figures, actions, quarantine, settings.trace_max_linked
    )

    routes = [
        *trace_routes(pool, settings.trace_max_linked),
        *ops_routes(figures, pipeline, rebuild),
        *exceptions_api_routes(actions),
        *console_routes(console, runtime.auth),
    ]
    return runtime.http_app(routes, template_config=template_config())
