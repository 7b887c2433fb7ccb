"""Typed settings of the outbound feeds.

Each field is read from CAREBUS_OUTBOUND_<FIELD>; see `carebus-outbound settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.jetstream.topology import OUTBOUND_BILLING_READINESS, TOPOLOGY
from carebus_shared.settings import load_settings

SERVICE = "outbound"
PACKAGE = "carebus_outbound"
SCHEMA = "carebus_outbound"  # the PostgreSQL schema this service owns
ENV_PREFIX = "CAREBUS_OUTBOUND_"


@dataclass(frozen=True, slots=True)
class Subscriber:
    name: str
    channel: str  # hl7 or fhir
    target: str  # host:port, or the FHIR base URL

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.target.rpartition(":")
        return host, int(port)


Seconds = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
CHANNELS = ("hl7", "fhir")
# "off": the site's completions are not sent (acknowledged); all off, the feed does not run.
BILLING_CHANNELS = (*CHANNELS, "off")


class Settings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8088
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    batch_wait_s: Seconds = 0.05
    # Billing readiness: how a completed visit reaches the billing system, per site
    # (`SITE01=fhir,SITE02=hl7`), and for every other site; off until a receiver is set.
    billing_channel: str = "off"
    billing_site_channels: str = ""
    # HL7 v2 over MLLP: where the billing system listens, and who it is in MSH-5/6.
    billing_mllp_host: str = "127.0.0.1"
    billing_mllp_port: Port = 2577
    billing_receiving_application: str = "BILLING"
    billing_receiving_facility: str = ""
    # FHIR R4 over HTTP: the billing system's base URL (Encounter is posted under it).
    billing_fhir_url: str = "http://127.0.0.1:8089/fhir"
    # Status back: where status events are posted (JSON, Idempotency-Key); empty: the
    # events are published on STATUS but no webhook is called (the durable's backlog grows).
    status_webhook_url: str = ""
    # Master data out: the scheduling systems subscribed to provider, location and service
    # changes, `NAME=hl7:host:port` (MFN over MLLP) or `NAME=fhir:base-url`, comma-separated.
    masterdata_subscribers: str = ""
    # How long connecting, and then the receiver's answer (the ACK, the response), may take.
    connect_timeout_s: Seconds = 2.0
    answer_timeout_s: Seconds = 10.0
    # Retries of a receiver that is down or busy: full-jitter backoff between deliveries,
    # and after this many deliveries the message is a dead letter (exception store).
    retry_base_s: Seconds = 1.0
    retry_max_s: Seconds = 300.0
    max_deliveries: Count = TOPOLOGY.consumer(OUTBOUND_BILLING_READINESS).max_deliver

    def __post_init__(self) -> None:
        for site, channel in {"": self.billing_channel, **self.site_channels()}.items():
            if channel not in BILLING_CHANNELS:
                where = f"site {site}" if site else "billing_channel"
                raise ValueError(f"{where}: channel must be one of {BILLING_CHANNELS}")
        self.subscribers()  # refuses what it cannot read

    def subscribers(self) -> list[Subscriber]:
        """The master data subscribers, from ``masterdata_subscribers``."""
        found = []
        for item in filter(None, (p.strip() for p in self.masterdata_subscribers.split(","))):
            name, _, target = item.partition("=")
            channel, _, where = target.partition(":")
            if not name or channel not in CHANNELS or not where:
                raise ValueError(
                    "masterdata_subscribers: each is NAME=hl7:host:port or NAME=fhir:url"
                )
            if channel == "hl7":
                host, _, port = where.rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError("masterdata_subscribers: an hl7 subscriber is host:port")
            found.append(Subscriber(name.strip(), channel, where))
        return found

    def site_channels(self) -> dict[str, str]:
        """Site → channel, from ``billing_site_channels``."""
        pairs = (item.split("=", 1) for item in self.billing_site_channels.split(",") if item)
        return {site.strip(): channel.strip() for site, channel in pairs}

    def billing_on(self) -> bool:
        """Whether any site's completions are sent."""
        return any(c != "off" for c in (self.billing_channel, *self.site_channels().values()))

    def channel_for(self, site: str) -> str:
        return self.site_channels().get(site, self.billing_channel)


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
