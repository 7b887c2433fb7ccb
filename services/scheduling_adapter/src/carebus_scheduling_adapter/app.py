"""Composition root of the scheduling adapter: the one place that wires its parts together.

``build`` makes the service (MLLP listener, FHIR and re-drive routes, exception capture);
``build_importer`` makes what the ``import`` command needs (no listener, no subscribers).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar

from carebus_scheduling_adapter.config import PACKAGE, SCHEMA, SERVICE, STAGE, Settings
from carebus_scheduling_adapter.domain.inputs import SOURCE_CSV, SOURCE_FHIR, SOURCE_HL7
from carebus_scheduling_adapter.entrypoints import http, mllp, subscribers
from carebus_scheduling_adapter.handlers.csv_import import CsvImport
from carebus_scheduling_adapter.handlers.fhir_requests import FhirRequests
from carebus_scheduling_adapter.handlers.hl7_messages import Hl7Messages
from carebus_shared.exceptions.redrive import RedriveInputs, Reprocessed
from carebus_shared.intake import Intake
from carebus_shared.runtime.service import ServiceRuntime


@dataclass(frozen=True)
class UseCases:
    hl7: Hl7Messages
    fhir: FhirRequests
    csv: CsvImport
    redrive: RedriveInputs


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

    async def redrive_hl7(raw: bytes, _: object) -> Reprocessed:
        return await hl7.handle(raw)

    redrive = RedriveInputs(
        lambda: runtime.pool,
        STAGE,
        {SOURCE_HL7: redrive_hl7, SOURCE_FHIR: fhir.handle, SOURCE_CSV: csv.handle},
    )
    return UseCases(hl7, fhir, csv, redrive)


def _runtime(settings: Settings) -> ServiceRuntime:
    return ServiceRuntime(SERVICE, settings, migrations=[(SCHEMA, PACKAGE)])


def build(settings: Settings) -> Litestar:
    runtime = _runtime(settings)
    subscribers.subscribe(runtime)
    parts = use_cases(runtime, settings)
    mllp.siu_listener(runtime, parts.hl7, settings)
    return runtime.http_app(http.routes(parts.fhir, parts.redrive, settings.max_upload_bytes))


def build_importer(settings: Settings) -> tuple[ServiceRuntime, CsvImport]:
    runtime = _runtime(settings)
    return runtime, use_cases(runtime, settings).csv
