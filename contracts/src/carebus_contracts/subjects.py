"""The subject catalogue: the one place that names every JetStream subject and stream.

Pattern: ``<domain>.<entity>.<event>.v<major>.<site>``.  The site is the last token so
that one wildcard (``scheduling.>``, ``*.*.*.v1.SITE01``) selects a domain or a site, and
permissions can be granted per domain or per site.  Publishers, consumers, provisioning
and the generated AsyncAPI document all build subjects through this module.
"""

from __future__ import annotations

import re
from typing import Final

_TOKEN_RE: Final = re.compile(r"[^A-Za-z0-9_-]")

# Streams: one per domain, each capturing every subject of that domain.
STREAM_SCHEDULING: Final = "SCHEDULING"
STREAM_BILLING: Final = "BILLING"
STREAM_MASTERDATA: Final = "MASTERDATA"
STREAM_VALIDATED: Final = "VALIDATED"
STREAM_ERP: Final = "ERP"
STREAM_EXCEPTIONS: Final = "EXCEPTIONS"
STREAM_STATUS: Final = "STATUS"

DOMAIN_SCHEDULING: Final = "scheduling"
DOMAIN_BILLING: Final = "billing"
DOMAIN_MASTERDATA: Final = "masterdata"
DOMAIN_VALIDATED: Final = "validated"
DOMAIN_ERP: Final = "erp"
DOMAIN_EXCEPTIONS: Final = "exceptions"
DOMAIN_STATUS: Final = "status"

STREAM_SUBJECTS: Final[dict[str, str]] = {
    STREAM_SCHEDULING: f"{DOMAIN_SCHEDULING}.>",
    STREAM_BILLING: f"{DOMAIN_BILLING}.>",
    STREAM_MASTERDATA: f"{DOMAIN_MASTERDATA}.>",
    STREAM_VALIDATED: f"{DOMAIN_VALIDATED}.>",
    STREAM_ERP: f"{DOMAIN_ERP}.>",
    STREAM_EXCEPTIONS: f"{DOMAIN_EXCEPTIONS}.>",
    STREAM_STATUS: f"{DOMAIN_STATUS}.>",
}

UNKNOWN_SITE: Final = "_unknown"


def site_token(site: str | None) -> str:
    """Return ``site`` as a safe NATS subject token (no dots, spaces or wildcards)."""
    if not site:
        return UNKNOWN_SITE
    return _TOKEN_RE.sub("_", site)


def subject(domain: str, entity: str, event: str, major: int, site: str | None) -> str:
    """Build a concrete subject, e.g. ``scheduling.appointment.booked.v1.SITE01``."""
    return f"{domain}.{entity}.{event}.v{major}.{site_token(site)}"


def filter_for(domain: str, entity: str = "*", event: str = "*", major: int | None = None) -> str:
    """A consumer filter over every site, e.g. ``erp.journal.requested.v1.*``."""
    version = f"v{major}" if major is not None else "*"
    return f"{domain}.{entity}.{event}.{version}.*"
