"""Composition root of the scheduling adapter: the one place that wires its parts together.

``build`` makes the service (MLLP listener, FHIR and re-drive routes, exception capture);
``build_importer`` makes what the ``import`` command needs (no listener, no subscribers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from litestar import Litestar

from carebus_scheduling_adapter.config import PACKAGE, SCHEMA, SERVICE, STAGE, Settings
from carebus_scheduling_adapter.entrypoints.exception_routes import exception_routes
from carebus_scheduling_adapter.entrypoints.fhir_routes import fhir_routes
from carebus_scheduling_adapter.handlers.csv_import import CsvImport
from carebus_scheduling_adapter.handlers.fhir_requests import FhirRequests
from carebus_scheduling_adapter.handlers.hl7_messages import Hl7Messages
from carebus_scheduling_adapter.handlers.redrive import Redrive
from carebus_shared.exceptions.subscriber import exception_capture_router
from carebus_shared.intake import Intake
from carebus_shared.jetstream.topology import EXCEPTION_CAPTURE, TOPOLOGY
from carebus_shared.mllp import MllpLimits, MllpMetrics, MllpServer
from carebus_shared.runtime.service import ServiceRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UseCases:
    hl7: Hl7Messages
    fhir: FhirRequests
    csv: CsvImport
    redrive: Redrive


def use_cases(runtime: ServiceRuntime, settings: Settings) -> UseCases:
    intake = Intake(runtime, STAGE, settings.publish_timeout_s)
    hl7 = Hl7Messages(intake, default_tz=settings.default_tz)
    fhir = FhirRequests(intake, source_system=settings.fhir_source_system, site=settings.site)
    csv = CsvImport(
        intake,
        source_system=settings.csv_source_system,
        site=settings.site,
        default_tz=settings.default_tz,
    )
    redrive = Redrive(lambda: runtime.pool, stage=STAGE, hl7=hl7, fhir=fhir, csv=csv)
    return UseCases(hl7, fhir, csv, redrive)


def _runtime(settings: Settings) -> ServiceRuntime:
    return ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])


def build(settings: Settings) -> Litestar:
    runtime = _runtime(settings)
    runtime.include_router(
        exception_capture_router(runtime), [TOPOLOGY.consumer(EXCEPTION_CAPTURE)]
    )
    parts = use_cases(runtime, settings)
    listener = MllpServer(
        parts.hl7.mllp_handler(),
        host=settings.mllp_host,
        port=settings.mllp_port,
        limits=MllpLimits(
            max_message_bytes=settings.mllp_max_message_bytes,
            idle_timeout=settings.mllp_idle_timeout_s,
            # Longer than a publish may take, so a slow ack ends as "no ACK", not a hang.
            handler_timeout=max(30.0, 2 * settings.publish_timeout_s),
        ),
        metrics=MllpMetrics(runtime.registry),
    )

    async def start_listener() -> None:
        # Only once NATS is connected: an AA must be possible before senders connect.
        try:
            await listener.start()
        except OSError:
            log.exception("MLLP listener cannot bind %s:%d", settings.mllp_host, settings.mllp_port)
            raise

    async def stop_listener() -> None:
        # Before the broker stops: in-flight messages finish their publish and get their ACK.
        await listener.close(settings.shutdown_grace_s)

    runtime.on_started.append(start_listener)
    runtime.on_stopping.append(stop_listener)
    return runtime.http_app([*fhir_routes(parts.fhir), *exception_routes(parts.redrive)])


def build_importer(settings: Settings) -> tuple[ServiceRuntime, CsvImport]:
    runtime = _runtime(settings)
    return runtime, use_cases(runtime, settings).csv
