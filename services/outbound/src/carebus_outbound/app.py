"""Composition root of the outbound feeds: the one place that wires their parts together.

Each feed reads its own durable (off the pipeline's path), builds the receiver's message
from the event, and delivers it once in effect through the shared feed loop
(handlers/deliver.py): the delivery log, control ids derived from event ids, retries with
backoff, dead letters in the shared exception store.
"""

from __future__ import annotations

import logging

import asyncpg
from litestar import Litestar

from carebus_outbound.adapters.http_client import HttpSender
from carebus_outbound.adapters.metrics import OutboundMetrics
from carebus_outbound.adapters.mllp_client import MllpClient
from carebus_outbound.config import PACKAGE, SCHEMA, SERVICE, Settings
from carebus_outbound.domain import billing_readiness as br
from carebus_outbound.domain import masterdata_out as mo
from carebus_outbound.domain.delivery import Retrying
from carebus_outbound.entrypoints import http, subscribers
from carebus_outbound.handlers import status_webhook
from carebus_outbound.handlers.billing_readiness import BillingReadiness
from carebus_outbound.handlers.deliver import Feed
from carebus_outbound.handlers.masterdata_out import MasterdataOut
from carebus_outbound.handlers.status import report_statuses
from carebus_shared.exceptions.subscriber import capture_exceptions
from carebus_shared.jetstream.topology import (
    OUTBOUND_BILLING_READINESS,
    OUTBOUND_MASTERDATA,
    OUTBOUND_STATUS_POSTING,
    OUTBOUND_STATUS_REMITTANCE,
    OUTBOUND_STATUS_WEBHOOK,
    TOPOLOGY,
)
from carebus_shared.runtime.service import ServiceRuntime


def build(settings: Settings) -> Litestar:
    # httpx logs every request at INFO: the metrics say it better.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    metrics = OutboundMetrics(runtime.registry)
    retrying = Retrying(settings.retry_base_s, settings.retry_max_s, settings.max_deliveries)

    def pool() -> asyncpg.Pool:
        return runtime.pool

    timeouts = (settings.connect_timeout_s, settings.answer_timeout_s)
    mllp = MllpClient(settings.billing_mllp_host, settings.billing_mllp_port, *timeouts)
    sender = HttpSender(*timeouts)
    runtime.on_stopping.append(sender.aclose)
    receiver = br.Receiver(
        settings.billing_receiving_application, settings.billing_receiving_facility
    )
    readiness = BillingReadiness(
        settings.channel_for, mllp, sender, settings.billing_fhir_url, receiver
    )
    if settings.billing_on():  # else completions wait on the durable for a receiver
        subscribers.subscribe(
            runtime,
            Feed(br.FEED, readiness.build, pool, metrics, retrying),
            TOPOLOGY.consumer(OUTBOUND_BILLING_READINESS),
            settings.batch_size,
            settings.batch_wait_s,
        )
    # Status back: remittance outcomes and ERP answers → STATUS events → the webhook.
    for durable in (OUTBOUND_STATUS_REMITTANCE, OUTBOUND_STATUS_POSTING):
        subscribers.stage(
            runtime, TOPOLOGY.consumer(durable), report_statuses, settings.batch_size,
            settings.batch_wait_s,
        )  # fmt: skip
    if settings.status_webhook_url:
        webhook = status_webhook.StatusWebhook(sender, settings.status_webhook_url)
        subscribers.subscribe(
            runtime,
            Feed(status_webhook.FEED, webhook.build, pool, metrics, retrying),
            TOPOLOGY.consumer(OUTBOUND_STATUS_WEBHOOK),
            settings.batch_size,
            settings.batch_wait_s,
        )
    # Master data out: every subscribed scheduling system, one change at a time.
    subscribers_ = settings.subscribers()
    if subscribers_:
        masterdata = MasterdataOut(subscribers_, sender, timeouts)
        subscribers.subscribe(
            runtime,
            Feed(mo.FEED, masterdata.build, pool, metrics, retrying),
            TOPOLOGY.consumer(OUTBOUND_MASTERDATA),
            1,
            settings.batch_wait_s,
        )
    # Messages given up on by JetStream (a crash loop) reach the exception store too.
    capture_exceptions(runtime)
    return runtime.http_app(http.routes(pool))
