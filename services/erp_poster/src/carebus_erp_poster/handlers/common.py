"""What both use cases share: the parts they work with, and the rejection reason of an ERP
error code."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from carebus_erp_poster.adapters.connector import ErpConnector
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_shared.jetstream.publish import Outgoing

Publish = Callable[[Sequence[Outgoing]], Awaitable[object]]
_REASON_RE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Parts:
    pool: Callable[[], asyncpg.Pool]
    connector: ErpConnector
    metrics: PosterMetrics
    publish: Publish
    consumer: str  # the durable whose inbox rows mark a request handled
    recheck_after_s: float  # when the ERP is asked again about a pending journal


def erp_reason(code: str) -> str:
    """A bounded, label-safe reason from an ERP error code (e.g. erp_unknown_account)."""
    return "erp_" + _REASON_RE.sub("_", code.lower()).strip("_")[:40]
