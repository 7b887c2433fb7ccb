"""Typed settings of the mapper.

Each field is read from CAREBUS_MAPPER_<FIELD>; see `carebus-mapper settings`.
"""

from __future__ import annotations

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "mapper"
PACKAGE = "carebus_mapper"
SCHEMA = "carebus_mapper"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_MAPPER_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8084


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
