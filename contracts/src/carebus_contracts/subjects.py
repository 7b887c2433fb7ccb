"""The subject catalogue: the one place that names every JetStream subject and stream.

Pattern: ``<domain>.<entity>.<event>.v<major>.<site>.p<partition>``.  The site is the fifth
token, so that wildcards (``scheduling.>``, ``*.*.*.v1.SITE01.>``) select a domain or a
site.  The partition (``p0`` … ``p5``) is a stable hash of the event's partition key (its
entity key, or the claim a billing event belongs to): an ordered stage reads each partition
through a durable of its own, and replicas share the partitions (docs/decisions/030).
Subjects stored before partitions have five tokens; filters end in ``.>`` to match both.
Publishers, consumers, provisioning and the generated AsyncAPI document all build subjects
through this module.
"""

from __future__ import annotations

import re
import zlib
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

# Partitions of every event subject. 6 so that 1, 2, 3 or 6 replicas of a stage each get an
# equal share (docs/decisions/030). Changing it moves entities between partitions: only on a
# drained pipeline.
PARTITIONS: Final = 6
_PARTITION_PREFIX: Final = "p"


def site_token(site: str | None) -> str:
    """Return ``site`` as a safe NATS subject token (no dots, spaces or wildcards)."""
    if not site:
        return UNKNOWN_SITE
    return _TOKEN_RE.sub("_", site)


def partition_of(key: str) -> int:
    """The partition of a partition key: CRC-32 of its UTF-8 bytes (the same in every
    process and release, unlike ``hash()``), modulo :data:`PARTITIONS`."""
    return zlib.crc32(key.encode()) % PARTITIONS


def partition_token(partition: int) -> str:
    """``3`` → ``p3``, the subject's last token."""
    if not 0 <= partition < PARTITIONS:
        raise ValueError(f"partition {partition} is not in 0..{PARTITIONS - 1}")
    return f"{_PARTITION_PREFIX}{partition}"


def subject(
    domain: str, entity: str, event: str, major: int, site: str | None, partition: int
) -> str:
    """Build a concrete subject, e.g. ``scheduling.appointment.booked.v1.SITE01.p3``."""
    return f"{domain}.{entity}.{event}.v{major}.{site_token(site)}.{partition_token(partition)}"


def filter_for(domain: str, entity: str = "*", event: str = "*", major: int | None = None) -> str:
    """A consumer filter over every site and partition, e.g. ``erp.journal.requested.v1.>``
    (also matches a subject stored before partitions, which ends at the site)."""
    version = f"v{major}" if major is not None else "*"
    return f"{domain}.{entity}.{event}.{version}.>"


def partition_filter(domain: str, partition: int) -> str:
    """Every subject of ``domain`` in one partition, e.g. ``validated.*.*.*.*.p2``."""
    return f"{domain}.*.*.*.*.{partition_token(partition)}"


def legacy_filter(domain: str) -> str:
    """Every subject of ``domain`` stored before partitions (five tokens)."""
    return f"{domain}.*.*.*.*"


def site_of(concrete: str) -> str:
    """The site token of a concrete subject (with or without its partition token)."""
    return concrete.split(".")[4]


def partition_in(concrete: str) -> int | None:
    """The partition a concrete subject names; None for a subject stored before partitions."""
    tokens = concrete.split(".")
    if len(tokens) != 6 or not tokens[5].startswith(_PARTITION_PREFIX):
        return None
    number = tokens[5][len(_PARTITION_PREFIX) :]
    return int(number) if number.isdigit() else None
