"""Typed settings of the ERP poster.

Each field is read from CAREBUS_ERP_POSTER_<FIELD>; see `carebus-erp-poster settings`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.jetstream.topology import ERP_POSTER, TOPOLOGY
from carebus_shared.settings import load_settings

SERVICE = "erp-poster"
PACKAGE = "carebus_erp_poster"
SCHEMA = "carebus_erp_poster"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_ERP_POSTER_"
# The ledger: this service's database role may add and read entries, never change them; the
# tables and their append-only triggers belong to the owner role (docs/decisions/026).
APPEND_ONLY_TABLES = ("journal_entry", "journal_line")

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8085
    # Which ERP the journals go to: "ledger" (the embedded PostgreSQL ledger) or "http".
    connector: Literal["ledger", "http"] = "ledger"
    # Journals per batch: a batch is one fetch, one transaction and one confirmed publish,
    # one at a time, so on a remittance file's backlog 100 left the poster half a file
    # behind the mapper (docs/decisions/031, addendum).
    batch_size: Count = 500
    # Batches in flight at once in this process with the ledger connector (a remote ERP
    # takes one): pullers sharing the durable, as replicas do; one batch's database work
    # overlaps another's publish (docs/decisions/031, addendum).
    parallel_batches: Count = 2
    # When no journal is waiting, a busy poster lingers this long for the next before it parks.
    batch_wait_s: Positive = 0.005
    # While a batch is being handled, tell JetStream "still working" this often so that a
    # slow ERP (rate limit, open breaker) does not hit the ack deadline and redeliver.
    ack_keepalive_s: Positive = 10.0
    # The consumer's max_deliver (topology); the last delivery of a journal the ERP cannot
    # take goes to the exception store with the ERP's last answer instead of a retry.
    max_deliveries: Count = TOPOLOGY.consumer(ERP_POSTER).max_deliver

    # -- http connector ------------------------------------------------------------------
    erp_base_url: str = "http://127.0.0.1:8086"
    erp_token: str = ""  # sent as a bearer token when set
    erp_timeout_s: Positive = 10.0
    erp_concurrency: Count = 8
    # Client-side ceiling on requests per second; a lower rate advertised by the ERP
    # (RateLimit-Policy header) wins.
    erp_rate_limit_per_s: Positive = 50.0
    erp_max_attempts: Count = 8
    erp_backoff_base_s: Positive = 0.2
    erp_backoff_max_s: Positive = 5.0
    # A Retry-After longer than this is not waited out in-process: the journal is retried later.
    erp_max_retry_after_s: Positive = 30.0
    # How long one batch may wait for an open circuit before it is handed back to JetStream.
    erp_hold_s: Positive = 30.0
    breaker_failures: Count = 5
    breaker_open_s: Positive = 5.0
    confirm_poll_s: Positive = 2.0
    confirm_batch: Count = 100


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
