"""Typed settings of the billing adapter.

Each field is read from CAREBUS_BILLING_ADAPTER_<FIELD>; see `carebus-billing settings`.
"""

from __future__ import annotations

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "billing-adapter"
PACKAGE = "carebus_billing_adapter"
SCHEMA = "carebus_billing_adapter"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_BILLING_ADAPTER_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8082
    mllp_host: str = "127.0.0.1"
    mllp_port: Port = 2576


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
