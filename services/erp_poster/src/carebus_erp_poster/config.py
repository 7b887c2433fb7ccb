"""Typed settings of the ERP poster.

Each field is read from CAREBUS_ERP_POSTER_<FIELD>; see `carebus-erp-poster settings`.
"""

from __future__ import annotations

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "erp-poster"
PACKAGE = "carebus_erp_poster"
SCHEMA = "carebus_erp_poster"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_ERP_POSTER_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8085


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
