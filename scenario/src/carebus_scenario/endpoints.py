"""Where the running suite listens, as the player and the observer need it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from carebus_shared.cli.services import ServiceEntry


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    database_url: str
    scheduling_http: str
    scheduling_mllp: tuple[str, int]
    billing_http: str
    billing_mllp: tuple[str, int]
    validator_http: str
    mapper_http: str
    poster_http: str
    inbox_dir: Path | None = None
    # Where the billing adapter files 835 events (its default site).
    remittance_site: str = "_unknown"
    # The ops console (its web pages under /console/), where one is running.
    console_http: str | None = None

    @classmethod
    def from_services(
        cls, services: list[ServiceEntry], nats_url: str, database_url: str
    ) -> Endpoints:
        """From the services' own settings (environment), as `carebus run` starts them."""
        settings = {s.name: msgspec.structs.asdict(s.settings()) for s in services}

        def http(name: str) -> str:
            found = settings[name]
            return f"http://{found['http_host']}:{found['http_port']}"

        def mllp(name: str) -> tuple[str, int]:
            found = settings[name]
            return str(found["mllp_host"]), int(found["mllp_port"])

        billing: dict[str, Any] = settings["billing-adapter"]
        return cls(
            nats_url=nats_url,
            database_url=database_url,
            scheduling_http=http("scheduling-adapter"),
            scheduling_mllp=mllp("scheduling-adapter"),
            billing_http=http("billing-adapter"),
            billing_mllp=mllp("billing-adapter"),
            validator_http=http("masterdata-validator"),
            mapper_http=http("mapper"),
            poster_http=http("erp-poster"),
            inbox_dir=Path(billing["inbox_dir"]) if billing.get("inbox_dir") else None,
            remittance_site=str(billing.get("default_site") or "_unknown"),
            console_http=http("ops-console") if "ops-console" in settings else None,
        )
