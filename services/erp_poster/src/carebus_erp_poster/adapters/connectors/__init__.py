"""ERP connectors, one module each, chosen by ``CAREBUS_ERP_POSTER_CONNECTOR``."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from carebus_erp_poster.adapters.connector import ErpConnector
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.config import Settings


def make_connector(
    settings: Settings, pool: Callable[[], asyncpg.Pool], metrics: PosterMetrics
) -> ErpConnector:
    # Imported here so that a deployment only loads the connector it runs.
    if settings.connector == "ledger":
        from carebus_erp_poster.adapters.connectors.ledger import LedgerConnector

        return LedgerConnector(pool)
    if settings.connector == "http":
        from carebus_erp_poster.adapters.connectors.rest_api import RestApiConnector

        return RestApiConnector.from_settings(settings, metrics)
    raise ValueError(f"unknown connector {settings.connector!r}")
