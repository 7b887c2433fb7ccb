"""Typed settings of the master-data validator.

Each field is read from CAREBUS_MASTERDATA_VALIDATOR_<FIELD>; see `carebus-masterdata settings`.
"""

from __future__ import annotations

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "masterdata-validator"
PACKAGE = "carebus_masterdata_validator"
SCHEMA = "carebus_masterdata_validator"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_MASTERDATA_VALIDATOR_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8083


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
