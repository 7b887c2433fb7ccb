"""Composition root of the billing adapter: the one place that wires its parts together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from litestar import Litestar

from carebus_billing_adapter.adapters.remittance_files import RemittanceFiles
from carebus_billing_adapter.config import PACKAGE, SCHEMA, SERVICE, STAGE, Settings
from carebus_billing_adapter.entrypoints import http, mllp, subscribers
from carebus_billing_adapter.entrypoints.inbox import InboxWatcher
from carebus_billing_adapter.handlers.dft import DftHandler
from carebus_billing_adapter.handlers.fhir import FhirHandler
from carebus_billing_adapter.handlers.redrive import redrive_paths
from carebus_billing_adapter.handlers.remittance import RemittanceHandler
from carebus_shared.exceptions.redrive import RedriveInputs
from carebus_shared.intake import Intake
from carebus_shared.mllp import MllpServer
from carebus_shared.runtime.service import ServiceRuntime


@dataclass(frozen=True)
class BillingAdapter:
    """The running parts, kept on ``app.state.billing`` for operators and tests."""

    runtime: ServiceRuntime
    dft: DftHandler
    remittances: RemittanceHandler
    fhir: FhirHandler
    redrive: RedriveInputs
    listener: MllpServer
    inbox: InboxWatcher | None


def _inbox(
    runtime: ServiceRuntime, settings: Settings, remittances: RemittanceHandler
) -> InboxWatcher:
    inbox = InboxWatcher(
        Path(settings.inbox_dir), remittances, runtime.registry, settle_s=settings.inbox_settle_s
    )
    runtime.on_started.append(inbox.prepare)
    runtime.background.every("billing-inbox", inbox.scan_once, settings.inbox_poll_s)
    return inbox


def build(settings: Settings) -> Litestar:
    runtime = ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])
    subscribers.subscribe(runtime)
    intake = Intake(runtime, STAGE, publish_timeout_s=settings.publish_timeout_s)

    dft = DftHandler(intake, settings)
    remittances = RemittanceHandler(intake, RemittanceFiles(lambda: runtime.pool), settings)
    fhir = FhirHandler(intake, settings)
    redrive = RedriveInputs(lambda: runtime.pool, STAGE, redrive_paths(dft, remittances, fhir))

    listener = mllp.dft_listener(runtime, dft, settings)
    inbox = _inbox(runtime, settings, remittances) if settings.inbox_dir else None

    app = runtime.http_app(http.routes(remittances, fhir, redrive, settings.max_upload_bytes))
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
