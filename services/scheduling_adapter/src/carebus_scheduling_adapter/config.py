"""Typed settings of the scheduling adapter.

Each field is read from CAREBUS_SCHEDULING_ADAPTER_<FIELD>; see `carebus-scheduling settings`.
"""

from __future__ import annotations

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "scheduling-adapter"
PACKAGE = "carebus_scheduling_adapter"
SCHEMA = "carebus_scheduling_adapter"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_SCHEDULING_ADAPTER_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8081
    mllp_host: str = "127.0.0.1"
    mllp_port: Port = 2575


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
