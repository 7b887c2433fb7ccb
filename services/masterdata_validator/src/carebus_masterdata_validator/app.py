"""Composition root of the master-data validator: the one place that wires its parts together.

- The governed API writes the system of record; each change goes through the outbox to the
  MASTERDATA stream and the KV bucket (the read model).
- The view watcher loads the KV bucket into memory and follows it; each change it sees is
  handed to the quarantine, which releases the parked events waiting for it.
- Two batch subscribers validate scheduling and billing events against the view; billing's
  charges feed the claim index its remittance events are booked by (docs/decisions/021).
"""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from nats.js import JetStreamContext

from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.adapters.outbox import OutboxDrainer
from carebus_masterdata_validator.adapters.view_watcher import ViewWatcher
from carebus_masterdata_validator.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_masterdata_validator.domain.view import MasterDataView
from carebus_masterdata_validator.entrypoints import subscribers
from carebus_masterdata_validator.entrypoints.http import api_routes
from carebus_masterdata_validator.handlers.masterdata import MasterData
from carebus_masterdata_validator.handlers.quarantine import Quarantine
from carebus_masterdata_validator.handlers.validate import Validator
from carebus_shared.jetstream.topology import (
    MASTERDATA_VIEW_BUCKET,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
)
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])

    def pool() -> asyncpg.Pool:
        return runtime.pool

    def js() -> JetStreamContext:
        return runtime.js

    metrics = ValidatorMetrics(runtime.registry)
    view = MasterDataView()
    quarantine = Quarantine(
        view,
        pool,
        js,
        metrics,
        batch_entities=settings.release_batch,
        sweep_s=settings.quarantine_sweep_s,
        gauge_refresh_s=settings.gauge_refresh_s,
    )
    watcher = ViewWatcher(
        view, js, MASTERDATA_VIEW_BUCKET, quarantine.changed, quarantine.sweep, metrics
    )
    outbox = OutboxDrainer(pool, js, MASTERDATA_VIEW_BUCKET, metrics, poll_s=settings.outbox_poll_s)
    validator = Validator(
        view,
        watcher.ready,
        pool,
        metrics,
        view_wait_s=settings.view_wait_s,
        parked=quarantine.parked,
        claims_known=quarantine.changed,  # a claim's first charge releases its remittances
    )
    subscribers.subscribe(
        runtime,
        validator,
        (VALIDATOR_SCHEDULING, VALIDATOR_BILLING),
        settings.batch_size,
        settings.batch_max_wait_s,
        settings.batches_in_flight,
    )

    for loop in (watcher.run, outbox.run, quarantine.run, quarantine.run_gauges):
        runtime.background.forever(loop.__qualname__, loop)

    service = MasterData(pool, outbox.wake, metrics)
    return runtime.http_app(api_routes(service, quarantine))
