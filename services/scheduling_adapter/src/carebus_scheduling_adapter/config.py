"""Typed settings of the scheduling adapter.

Each field is read from CAREBUS_SCHEDULING_ADAPTER_<FIELD>; see `carebus-scheduling settings`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carebus_shared.config import IntakeSettings, Port
from carebus_shared.settings import SettingsError, load_settings

SERVICE = "scheduling-adapter"
PACKAGE = "carebus_scheduling_adapter"
SCHEMA = "carebus_scheduling_adapter"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_SCHEDULING_ADAPTER_"
# The stage name under which this service's rejected inputs are kept in the exception store.
STAGE = "scheduling_adapter"  # the exception-store stage (carebus_contracts.exceptions.Stage)


class Settings(IntakeSettings, frozen=True, kw_only=True):
    http_port: Port = 8081
    mllp_port: Port = 2575
    # Zone of timestamps that carry no offset (HL7 TS, CSV exports): the senders' zone.
    default_tz: str = "UTC"
    # FHIR and CSV inputs carry no sender id of their own: these name it unless the request
    # header X-Carebus-Source-System / X-Carebus-Site or the CSV mapping file says otherwise.
    fhir_source_system: str = "fhir"
    csv_source_system: str = "csv-import"
    site: str | None = None


def load() -> Settings:
    settings = load_settings(Settings, ENV_PREFIX)
    try:
        ZoneInfo(settings.default_tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"{ENV_PREFIX}DEFAULT_TZ={settings.default_tz!r} is not a known time zone"
        ) from exc
    return settings
