"""Typed settings of the master-data validator.

Each field is read from CAREBUS_MASTERDATA_VALIDATOR_<FIELD>; see `carebus-masterdata settings`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "masterdata-validator"
PACKAGE = "carebus_masterdata_validator"
SCHEMA = "carebus_masterdata_validator"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_MASTERDATA_VALIDATOR_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8083
    # In-flight validation: at most this many messages per batch; when none are waiting, a
    # busy consumer lingers this long for the next before it parks (the most a quiet hop adds).
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100
    batch_max_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 0.005
    # Batches handled before the oldest's outputs are confirmed, per partition (1: each batch
    # start to end before the next; docs/decisions/033).
    batches_in_flight: Annotated[int, msgspec.Meta(ge=1, le=4)] = 2
    # How long a batch waits for the master-data view's initial load before it is retried.
    view_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Safety net: re-try every parked entity this often, even without a master-data change.
    quarantine_sweep_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # Entities re-validated per release round (bounds one round's transaction).
    release_batch: Annotated[int, msgspec.Meta(ge=1)] = 200
    # The outbox is drained on every change; this poll catches rows other replicas left.
    outbox_poll_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    # How often the quarantine size / oldest-age gauges are refreshed from the database.
    gauge_refresh_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
