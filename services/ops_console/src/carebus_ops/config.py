"""Typed settings of the ops console.

Each field is read from CAREBUS_OPS_CONSOLE_<FIELD>; see `carebus-ops-console settings`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import load_settings

SERVICE = "ops-console"
PACKAGE = "carebus_ops"
SCHEMA = "carebus_ops"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_OPS_CONSOLE_"

Hours = Annotated[float, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]

# Where each service answers /health/ready by default (their default ports on loopback).
DEFAULT_SERVICE_URLS = ",".join(
    (
        "scheduling-adapter=http://127.0.0.1:8081",
        "billing-adapter=http://127.0.0.1:8082",
        "masterdata-validator=http://127.0.0.1:8083",
        "mapper=http://127.0.0.1:8084",
        "erp-poster=http://127.0.0.1:8085",
    )
)


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8087
    # Tracker: events stored per batch (one statement per table), and how long a busy
    # tracker lingers for more before it stores what it has.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 500
    batch_max_wait_s: Seconds = 0.05
    # After a batch short of batch_size, how long the tracker waits before fetching again
    # (fewer, fuller batches while it keeps up; its lag grows by at most this).
    batch_linger_s: Annotated[float, msgspec.Meta(ge=0, le=5)] = 1.0
    # Business gauges are recomputed from the tracker tables this often.
    figures_refresh_s: Seconds = 15.0
    # JetStream consumer and stream state is polled this often.
    jetstream_poll_s: Seconds = 15.0
    # Thresholds of the business gauges (hours).
    completed_without_charge_h: Hours = 24.0
    # A site's own wait for the charge of a completed visit (hours), e.g. `SITE01=12,SITE02=48`;
    # past it the visit becomes a work item and an exception record (docs/decisions/025).
    completed_without_charge_site_h: str = ""
    charges_unposted_h: Hours = 24.0
    journals_unconfirmed_h: Hours = 4.0
    # Sites always registered, beside those master data names (locations' site_code);
    # comma-separated. Any other site is counted as `_other` in metric labels.
    sites: str = ""
    # `name=url` pairs (comma-separated) whose /health/ready `GET /v1/pipeline` reports.
    service_urls: str = DEFAULT_SERVICE_URLS
    # How long `GET /v1/pipeline` waits for one service's readiness answer.
    ready_timeout_s: Seconds = 1.0
    # The longest trace answered: linked entities beyond this are left out (and said so).
    trace_max_linked: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200
    # Where the exceptions API forwards re-drives of inputs an adapter kept (its own route).
    scheduling_adapter_url: str = "http://127.0.0.1:8081"
    billing_adapter_url: str = "http://127.0.0.1:8082"
    # The validator's quarantine API, which the console's quarantine page calls.
    validator_url: str = "http://127.0.0.1:8083"
    # The console's own API key (scopes exceptions:read, exceptions:write, actor:delegate):
    # it calls the adapters' re-drive and the validator's quarantine naming the person.
    service_key: str = ""
    # How long the console waits for an adapter's or the validator's answer.
    downstream_timeout_s: Seconds = 60.0

    def configured_sites(self) -> frozenset[str]:
        return frozenset(site.strip() for site in self.sites.split(",") if site.strip())

    def adapter_urls(self) -> dict[str, str]:
        """Exception stage → the adapter that re-drives what it kept."""
        return {
            "scheduling_adapter": self.scheduling_adapter_url.rstrip("/"),
            "billing_adapter": self.billing_adapter_url.rstrip("/"),
        }

    def services(self) -> dict[str, str]:
        """Service name → base URL, from ``service_urls``."""
        pairs = (item.split("=", 1) for item in self.service_urls.split(",") if "=" in item)
        return {name.strip(): url.strip().rstrip("/") for name, url in pairs}


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
