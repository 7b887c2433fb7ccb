"""Settings of the ERP sandbox, read from CAREBUS_ERP_SANDBOX_<FIELD>.

``http_host``, ``http_port``, ``log_level`` and ``shutdown_grace_s`` mean what they mean for
the services: the shared service script serves the sandbox the same way.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from carebus_shared.config import DatabaseUrl, LogLevel, Port, ShutdownGrace
from carebus_shared.settings import load_settings

SERVICE = "erp-sandbox"
PACKAGE = "carebus_erp_sandbox"
SCHEMA = "carebus_erp_sandbox"
ENV_PREFIX = "CAREBUS_ERP_SANDBOX_"

# A small chart of accounts, including every account the mapper's default rules book to
# (services/mapper/src/carebus_mapper/rules/default/accounts.toml), so the demo posts.
DEFAULT_ACCOUNTS = (
    "1000,1010,1100,1200,1210,1250,1300,1400,2000,2100,2200,2300,4000,4010,4100,4200,4300,"
    "4700,4900,4950,5000,5100,6000,6100,9000,9010,9020,9030,9040,9099,9100,9199,9300,9310,9320"
)
Rate = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: DatabaseUrl = "postgresql://postgres@127.0.0.1:5432/carebus"
    http_host: str = "127.0.0.1"
    http_port: Port = 8086
    log_level: LogLevel = "INFO"
    shutdown_grace_s: ShutdownGrace = 20.0
    # Requests admitted per window (0: unlimited), advertised as RateLimit-Policy.
    rate_limit: Annotated[int, msgspec.Meta(ge=0)] = 20
    rate_window_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    latency_ms: NonNegative = 20.0
    latency_jitter_ms: NonNegative = 10.0
    # Share of requests answered 500 at random.
    error_rate: Rate = 0.0
    # Scheduled outages, seconds after start-up: "30-90,300-330".
    outages: str = ""
    # During an outage: "unavailable" answers 503 at once; "hang" answers nothing for hang_s.
    outage_mode: Literal["unavailable", "hang"] = "unavailable"
    hang_s: NonNegative = 30.0
    # A journal is booked (or rejected) this long after it was accepted; 0 books at once.
    confirm_delay_s: NonNegative = 2.0
    # The chart of accounts; a journal naming another account is refused with 422.
    accounts: str = DEFAULT_ACCOUNTS
    # Periods ("2024-12,2025-01") closed for posting: journals dated there are accepted, then
    # rejected at confirmation (the asynchronous rejection a real ERP gives).
    closed_periods: str = ""


class BadOutageWindow(ValueError):
    """An ``outages`` setting that is not a list of <start>-<end> seconds."""


def parse_windows(text: str) -> list[tuple[float, float]]:
    """ "30-90,300-330" → [(30.0, 90.0), (300.0, 330.0)]; raises BadOutageWindow naming the
    bad one."""
    windows = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        start, sep, end = part.partition("-")
        try:
            window = (float(start), float(end))
        except ValueError:
            window = (0.0, -1.0)
        if not sep or window[1] <= window[0]:
            raise BadOutageWindow(f"outage window {part!r} is not <start>-<end> seconds")
        windows.append(window)
    return windows


def load() -> Settings:
    return load_settings(Settings, ENV_PREFIX)
