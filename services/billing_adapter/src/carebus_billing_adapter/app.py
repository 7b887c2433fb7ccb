"""Composition root of the billing adapter: the one place that wires its parts together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from litestar import Litestar

from carebus_billing_adapter.adapters.remittance_files import RemittanceFiles
from carebus_billing_adapter.config import PACKAGE, SCHEMA, SERVICE, STAGE, Settings
from carebus_billing_adapter.entrypoints.http_routes import routes
from carebus_billing_adapter.entrypoints.inbox import InboxWatcher
from carebus_billing_adapter.entrypoints.mllp_listener import DftListener
from carebus_billing_adapter.handlers.dft import DftHandler
from carebus_billing_adapter.handlers.fhir import FhirHandler
from carebus_billing_adapter.handlers.redrive import RedriveHandler
from carebus_billing_adapter.handlers.remittance import RemittanceHandler
from carebus_shared.exceptions.subscriber import exception_capture_router
from carebus_shared.intake import Intake
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY
from carebus_shared.mllp import MllpMetrics
from carebus_shared.runtime.service import ServiceRuntime


@dataclass(frozen=True)
class BillingAdapter:
    """The running parts, kept on ``app.state.billing`` for operators and tests."""

    runtime: ServiceRuntime
    dft: DftHandler
    remittances: RemittanceHandler
    fhir: FhirHandler
    redrive: RedriveHandler
    listener: DftListener
    inbox: InboxWatcher | None


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
    intake = Intake(runtime, STAGE, publish_timeout_s=settings.publish_timeout_s)

    dft = DftHandler(intake, settings)
    remittances = RemittanceHandler(intake, RemittanceFiles(lambda: runtime.pool), settings)
    fhir = FhirHandler(intake, settings)
    redrive = RedriveHandler(lambda: runtime.pool, dft, remittances, fhir)

    # Listeners start only once NATS, JetStream consumers and PostgreSQL are up, and stop
    # (finishing in-flight messages) before the broker closes.
    listener = DftListener(
        dft, settings.mllp_host, settings.mllp_port, MllpMetrics(runtime.registry)
    )
    runtime.on_started.append(listener.start)
    runtime.on_stopping.append(listener.stop)
    inbox = None
    if settings.inbox_dir:
        inbox = InboxWatcher(
            Path(settings.inbox_dir),
            remittances,
            runtime.registry,
            poll_s=settings.inbox_poll_s,
            settle_s=settings.inbox_settle_s,
        )
        runtime.on_started.append(inbox.start)
        runtime.on_stopping.append(inbox.stop)

    app = runtime.http_app(routes(remittances, fhir, redrive, settings.max_upload_bytes))
    app.state.billing = BillingAdapter(
        runtime=runtime,
        dft=dft,
        remittances=remittances,
        fhir=fhir,
        redrive=redrive,
        listener=listener,
        inbox=inbox,
    )
    return app
