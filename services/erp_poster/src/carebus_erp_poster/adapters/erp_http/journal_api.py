"""The journal API the "http" connector speaks, and the ERP sandbox serves.

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

from carebus_contracts.erp import JournalEntryRequested


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


def journal_body(request: JournalEntryRequested, key: str) -> JournalBody:
    return JournalBody(
        journal_id=request.journal_id,
        company=request.company,
        posting_date=request.posting_date,
        description=request.description,
        reference=key,
        lines=[
            JournalLineBody(
                line_number=line.line_number,
                account=line.account,
                side=str(line.side),
                amount_minor=line.amount.amount_minor,
                currency=line.amount.currency,
                dimensions=Dimensions(
                    cost_centre=line.dimensions.cost_centre,
                    department=line.dimensions.department,
                    location=line.dimensions.location,
                    payer_class=(
                        None
                        if line.dimensions.payer_class is None
                        else str(line.dimensions.payer_class)
                    ),
                    provider=line.dimensions.provider,
                ),
                memo=line.memo,
            )
            for line in request.lines
        ],
    )
