"""What an ERP connector can answer for one journal. Pure values, no I/O."""

from __future__ import annotations

import datetime as dt

import msgspec


class Booked(msgspec.Struct, frozen=True):
    """Posted and already booked (the ledger; an ERP that confirms synchronously)."""

    erp_request_id: str
    document_number: str
    fiscal_period: str | None
    at: dt.datetime


class Accepted(msgspec.Struct, frozen=True):
    """Accepted for processing; the confirmation comes later (poll or callback)."""

    erp_request_id: str
    at: dt.datetime


class Refused(msgspec.Struct, frozen=True):
    """A permanent answer (validation): retrying the same request can never succeed."""

    code: str
    message: str
    answer: str  # the ERP's answer as received (status line and body), for the exception store
    path: str | None = None  # where in the journal, e.g. $.lines[0].account
    value: str | None = None  # the offending value


class Unavailable(msgspec.Struct, frozen=True):
    """The ERP could not take it now (outage, throttling, open circuit): try again later."""

    reason: str
    retry_after_s: float


PostResult = Booked | Accepted | Refused | Unavailable


class StillPending(msgspec.Struct, frozen=True):
    pass


class Confirmed(msgspec.Struct, frozen=True):
    document_number: str
    fiscal_period: str | None
    at: dt.datetime


class Rejected(msgspec.Struct, frozen=True):
    code: str
    message: str
    at: dt.datetime


Confirmation = StillPending | Confirmed | Rejected
