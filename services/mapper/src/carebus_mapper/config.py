"""Typed settings of the mapper.

Each field is read from CAREBUS_MAPPER_<FIELD>; see `carebus-mapper settings`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "mapper"
PACKAGE = "carebus_mapper"
SCHEMA = "carebus_mapper"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_MAPPER_"


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8084
    rules_dir: str = ""
    """A rule directory to use instead of the shipped default rule set."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """Validated events fetched and mapped per batch."""
    max_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 0.005
    """When no event is waiting, how long a busy mapper lingers for the next before it
    parks: the most a quiet hop adds (a batch is otherwise whatever is waiting)."""
    publish_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    batches_in_flight: Annotated[int, msgspec.Meta(ge=1, le=4)] = 2
    """Batches handled before the oldest's journals are confirmed and its versions stored,
    per partition (1: each batch start to end before the next; docs/decisions/033)."""


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
