"""Typed settings of the billing adapter.

Each field is read from CAREBUS_BILLING_ADAPTER_<FIELD>; see `carebus-billing settings`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from carebus_shared.config import IntakeSettings, Port
from carebus_shared.settings import load_settings

SERVICE = "billing-adapter"
PACKAGE = "carebus_billing_adapter"
SCHEMA = "carebus_billing_adapter"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_BILLING_ADAPTER_"
STAGE = "billing_adapter"  # the exception-store stage (carebus_contracts.exceptions.Stage)

Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Positive = Annotated[float, msgspec.Meta(gt=0)]


class Settings(IntakeSettings, frozen=True, kw_only=True):
    http_port: Port = 8082
    mllp_port: Port = 2576
    # Site of events whose input does not name one (835 files; HL7 without MSH-4; FHIR).
    default_site: str = "_unknown"
    # Zone of HL7 timestamps without an offset, and of 835/FHIR dates turned into instants.
    default_timezone: str = "UTC"
    # Currency of HL7 amounts without a denomination and of FHIR Money without one.
    default_currency: Currency = "USD"
    # source_system of remittance events: one name, so payer codes cross-reference once.
    remittance_source_system: str = "x12-835"
    # source_system of events created over the FHIR API.
    fhir_source_system: str = "fhir-api"
    # Watched folder for 835 files (empty: no folder is watched). Files are moved to its
    # done/ or rejected/ sub-folder; a rejected file gets a <name>.reason next to it.
    inbox_dir: str = ""
    inbox_poll_s: Positive = 2.0
    # A file must be this old (mtime) before it is read, so half-written files are left alone.
    inbox_settle_s: float = 1.0
    publish_timeout_s: Positive = 10.0


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
