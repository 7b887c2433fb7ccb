"""Typed settings of the scheduling adapter.

Each field is read from CAREBUS_SCHEDULING_ADAPTER_<FIELD>; see `carebus-scheduling settings`.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import SettingsError, load_settings

SERVICE = "scheduling-adapter"
PACKAGE = "carebus_scheduling_adapter"
SCHEMA = "carebus_scheduling_adapter"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_SCHEDULING_ADAPTER_"
# The stage name under which this service's rejected inputs are kept in the exception store.
STAGE = "scheduling_adapter"  # the exception-store stage (carebus_contracts.exceptions.Stage)

Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8081
    mllp_host: str = "127.0.0.1"
    mllp_port: Port = 2575
    mllp_max_message_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    # A connection that sends nothing for this long is closed (senders reconnect).
    mllp_idle_timeout_s: Seconds = 300.0
    # JetStream must confirm a publish within this time, else no ACK / HTTP 503 is answered.
    publish_timeout_s: Seconds = 5.0
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
