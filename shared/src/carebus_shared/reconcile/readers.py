"""Reading the three systems, read-only: the streams, the ERP poster's ledger, the exception
store, and the sites master data knows.

* Streams: an ephemeral consumer per stream (acknowledges nothing, in memory, deleted
  afterwards, gone by itself after a minute if we die), delivering from a start time; reading
  stops at the stream's last sequence when it began, so a busy stream cannot keep it going.
* Ledger: SQL against the ERP poster's schema ``carebus_erp_poster`` (journal entries, their
  lines, journal states). A batch tool reading another component's tables is a coupling we
  accept here (docs/decisions/014); nothing is written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from carebus_contracts import decode_as, decode_message, subjects
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.masterdata import LocationChanged
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_shared import crypto
from carebus_shared.exceptions.store import decode_headers
from carebus_shared.jetstream.pull import Puller
from carebus_shared.jetstream.topology import MASTERDATA_VIEW_BUCKET
from carebus_shared.reconcile import sources
from carebus_shared.reconcile.domain import (
    BillingItem,
    ExceptionNote,
    Journal,
    Views,
    Visit,
)

_BATCH = 500
_UNDECODABLE = (ContractDecodeError, UnknownContractError)


async def read_stream(
    nc: Client, stream: str, subject: str | tuple[str, ...], since: dt.datetime | None
) -> AsyncIterator[Msg]:
    """The messages of ``stream`` on ``subject`` (or any of several filters) recorded from
    ``since`` (None: all, the last per subject only), up to the stream's last sequence when
    reading began."""
    js = nc.jetstream()
    state = (await js.stream_info(stream)).state
    if state.messages == 0:
        return
    consumer = await js.add_consumer(
        stream,
        api.ConsumerConfig(
            filter_subjects=[subject] if isinstance(subject, str) else list(subject),
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT
            if since is None
            else api.DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    assert consumer.name is not None
    puller = Puller(nc, stream, consumer.name)
    await puller.start()
    try:
        for _ in range(state.messages + 1):  # bounded: each pull brings one message or more
            msgs = await puller.pull(_BATCH, None)
            for msg in msgs:
                if msg.metadata.sequence.stream > state.last_seq:
                    return
                yield msg
            if not msgs or msgs[-1].metadata.sequence.stream >= state.last_seq:
                return
    finally:
        await puller.stop()
        # Gone already? The server removes an inactive one anyway.
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await js.delete_consumer(stream, consumer.name)


@dataclass
class Undecodable:
    """Messages that decoded to no known contract, per stream: counted, never shown."""

    by_stream: Counter[str] = field(default_factory=Counter)


async def read_events(
    nc: Client,
    stream: str,
    subject: str | tuple[str, ...],
    since: dt.datetime,
    undecodable: Undecodable,
) -> list[Event]:
    events = []
    async for msg in read_stream(nc, stream, subject, since):
        try:
            events.append(decode_message(msg.subject, msg.data, msg.headers))
        except _UNDECODABLE:
            undecodable.by_stream[stream] += 1
    return events


def site_subject(
    domain: str, site: str | None, entity: str = "*", event: str = "*"
) -> tuple[str, str]:
    """The filters of one site's (or every site's) events: with their partition token, and
    as stored before partitions (docs/decisions/030)."""
    stored_before = f"{domain}.{entity}.{event}.*.{subjects.site_token(site) if site else '*'}"
    return f"{stored_before}.*", stored_before


async def registered_sites(nc: Client) -> frozenset[str]:
    """The sites master data's locations name (the validator's KV read model)."""
    found = set()
    stream, prefix = f"KV_{MASTERDATA_VIEW_BUCKET}", f"$KV.{MASTERDATA_VIEW_BUCKET}."
    try:
        async for msg in read_stream(nc, stream, f"{prefix}location.>", None):
            try:
                location = decode_as(LocationChanged, msg.data).location
            except _UNDECODABLE:
                continue
            if location.site_code:
                found.add(location.site_code)
    except nats.js.errors.NotFoundError:
        pass  # no master data yet: every site is "other"
    return frozenset(found)


# -- the ledger -----------------------------------------------------------------------------
_ENTRY_LINES = """
SELECT e.entry_id, e.journal_id, e.site, e.posting_date, e.posted_at, l.account, l.currency,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'debit'), 0)::bigint  AS debit,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'credit'), 0)::bigint AS credit
  FROM carebus_erp_poster.journal_entry e
  JOIN carebus_erp_poster.journal_line l USING (entry_id)
 WHERE e.posting_date = ANY($1::date[]) AND ($2::text IS NULL OR e.site = $2)
 GROUP BY e.entry_id, l.account, l.currency
"""
_STATES = """
SELECT journal_id, connector, status, posted_at, document_number, erp_request_id
  FROM carebus_erp_poster.journal_status WHERE journal_id = ANY($1::text[])
"""


async def read_journals(
    conn: Any,
    requests: dict[str, JournalEntryRequested],
    dates: Iterable[dt.date],
    site: str | None,
) -> list[Journal]:
    """The journals requested, and those the ledger holds for ``dates``, with their entries
    and states."""
    wanted = sorted(set(dates) | {r.posting_date for r in requests.values()})
    entry_lines = await conn.fetch(_ENTRY_LINES, wanted, site)
    ids = sorted(set(requests) | {row["journal_id"] for row in entry_lines})
    states = {row["journal_id"]: row for row in await conn.fetch(_STATES, ids)}
    return sources.journals(requests, entry_lines, states)


# -- the exception store --------------------------------------------------------------------
_EXCEPTIONS = """
SELECT id, reason, status, event_id, subject, headers, raw
  FROM carebus_exceptions.exception_record
 WHERE status = 'open' OR (status = 'discarded' AND recorded_at >= $1)
 ORDER BY id
 LIMIT $2
"""


async def read_exceptions(
    conn: Any, since: dt.datetime, limit: int = 200_000
) -> list[ExceptionNote]:
    """Open records, and those a person discarded since ``since``: what can explain a gap."""
    notes = []
    for row in await conn.fetch(_EXCEPTIONS, since, limit):
        event = None
        if row["subject"] and row["raw"] is not None:
            raw = crypto.unseal(row["raw"]) or b""  # a key missing is an error, not "no event"
            try:
                event = decode_message(row["subject"], raw, decode_headers(row["headers"]))
            except (*_UNDECODABLE, ValueError):
                event = None  # raw input kept by an adapter, not an event
        notes.append(sources.exception_note(row, event))
    return notes


# -- everything -----------------------------------------------------------------------------
def _relevant(
    requests: dict[str, JournalEntryRequested],
    visits: Iterable[Visit],
    items: Iterable[BillingItem],
    days: set[dt.date],
) -> dict[str, JournalEntryRequested]:
    """The requests posting on ``days`` or made for a source event of ``days``."""
    events = {e for v in visits if v.day in days for e in v.event_ids}
    events.update(i.event_id for i in items if i.day in days)
    return {
        journal_id: r
        for journal_id, r in requests.items()
        if r.posting_date in days or not events.isdisjoint(r.source_event_ids)
    }


@dataclass
class Read:
    views: Views
    registered_sites: frozenset[str]
    undecodable: Undecodable


async def read_all(
    nc: Client, conn: Any, days: Sequence[dt.date], site: str | None, since: dt.datetime
) -> Read:
    """Every view of ``days`` (and ``site``), from what the streams recorded since ``since``."""
    undecodable = Undecodable()
    scheduling, billing, erp, registered = await asyncio.gather(
        read_events(
            nc, subjects.STREAM_SCHEDULING, site_subject(subjects.DOMAIN_SCHEDULING, site),
            since, undecodable,
        ),
        read_events(
            nc, subjects.STREAM_BILLING, site_subject(subjects.DOMAIN_BILLING, site),
            since, undecodable,
        ),
        read_events(
            nc, subjects.STREAM_ERP,
            site_subject(subjects.DOMAIN_ERP, site, "journal", "requested"), since, undecodable,
        ),
        registered_sites(nc),
    )  # fmt: skip
    visits = sources.visits(scheduling)
    items = sources.billing_items(billing)
    requests = _relevant(sources.journal_requests(erp), visits, items, set(days))
    journals = await read_journals(conn, requests, days, site)
    notes = await read_exceptions(conn, since - dt.timedelta(days=90))
    return Read(Views(visits, items, journals, notes), registered, undecodable)
