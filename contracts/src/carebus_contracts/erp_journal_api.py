"""The journal API the ERP poster's "http" connector speaks, and the ERP sandbox serves.

Not events on the bus: the wire format of a cloud ERP's REST API, kept here so that the
poster and the sandbox (a separate package, which must not import the poster) share it.

Modelled on cloud ERPs' general-ledger APIs:
- ``POST /api/v1/journals`` with an ``Idempotency-Key`` header → 202 ``JournalReceipt``
  (``status`` pending, or confirmed when the ERP books synchronously); the same key and body
  again → the stored receipt with ``Idempotent-Replayed: true``; the same key with another
  body → 409; validation errors → 422 ``Problem``; over the rate limit → 429 + Retry-After.
- ``POST /api/v1/journals/status`` with ``StatusQuery`` → ``JournalStatus`` per request id.
- Every answer advertises ``RateLimit-Policy: <limit>;w=<seconds>``.
"""

from __future__ import annotations

import datetime as dt

import msgspec


class Dimensions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    cost_centre: str | None = None
    department: str | None = None
    location: str | None = None
    payer_class: str | None = None
    provider: str | None = None


class JournalLineBody(msgspec.Struct, frozen=True, kw_only=True):
    line_number: int
    account: str
    side: str  # debit | credit
    amount_minor: int
    currency: str
    dimensions: Dimensions = msgspec.field(default_factory=Dimensions)
    memo: str | None = None


class JournalBody(msgspec.Struct, frozen=True, kw_only=True):
    journal_id: str
    company: str
    posting_date: dt.date
    description: str
    reference: str  # our idempotency key, echoed on the ERP document
    lines: list[JournalLineBody]


class JournalReceipt(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    status: str  # pending | confirmed
    accepted_at: dt.datetime
    document_number: str | None = None
    fiscal_period: str | None = None


class JournalStatus(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    status: str  # pending | confirmed | rejected | unknown
    document_number: str | None = None
    fiscal_period: str | None = None
    decided_at: dt.datetime | None = None
    error_code: str | None = None
    message: str | None = None


class StatusQuery(msgspec.Struct, frozen=True, kw_only=True):
    request_ids: list[str]


class StatusList(msgspec.Struct, frozen=True, kw_only=True):
    journals: list[JournalStatus]


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    path: str | None = None
    value: str | None = None


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, with the validation errors."""

    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)
