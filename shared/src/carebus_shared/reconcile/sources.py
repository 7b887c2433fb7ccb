"""What was read, as the views :mod:`carebus_shared.reconcile.domain` compares. Pure.

Events arrive decoded (any historical version, upcast by the contracts); ledger and exception
rows as mappings of their columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from carebus_contracts import billing as b
from carebus_contracts import subjects
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalEntryRequested, Side
from carebus_contracts.scheduling import Appointment
from carebus_contracts.validated import Validated
from carebus_shared.reconcile.domain import (
    ADJUSTMENT,
    CHARGE,
    CLAIM,
    PAYMENT,
    REVERSAL,
    BillingItem,
    ExceptionNote,
    Journal,
    Posting,
    Visit,
)

_STREAM_OF_DOMAIN: Final = {
    subjects.DOMAIN_SCHEDULING: subjects.STREAM_SCHEDULING,
    subjects.DOMAIN_BILLING: subjects.STREAM_BILLING,
}


def entity_of(stream: str, event: Event) -> str:
    """How the validator keys an entity's parked queue: ``<stream>:<entity key>``."""
    return f"{stream}:{event.entity_key}"


def visits(events: Iterable[Event]) -> list[Visit]:
    """The newest state of each appointment among ``events`` (stream order breaks ties)."""
    newest: dict[str, tuple[Event, Appointment]] = {}
    event_ids: dict[str, set[str]] = {}
    for event in events:
        appointment: Appointment | None = getattr(event, "appointment", None)
        if appointment is None:
            continue
        key = entity_of(subjects.STREAM_SCHEDULING, event)
        event_ids.setdefault(key, set()).add(event.event_id)
        held = newest.get(key)
        if held is None or event.entity_version >= held[0].entity_version:
            newest[key] = (event, appointment)
    return [
        Visit(
            appointment_id=appointment.appointment_id,
            site=event.site,
            day=appointment.slot_start.date(),
            status=str(appointment.status),
            event_id=event.event_id,
            recorded_at=event.recorded_at,
            patient_ref=appointment.patient_ref,
            entity=key,
            event_ids=frozenset(event_ids[key]),
        )
        for key, (event, appointment) in newest.items()
    ]


def billing_item(event: Event) -> BillingItem | None:
    """One billing event as an item; None for anything else."""
    common: dict[str, Any] = {
        "event_id": event.event_id,
        "site": event.site,
        "recorded_at": event.recorded_at,
        "entity": entity_of(subjects.STREAM_BILLING, event),
    }
    match event:
        case b.ChargePosted(charge=charge):
            return BillingItem(
                CHARGE, charge.charge_id, day=charge.service_date,
                amount_minor=charge.amount.amount_minor, currency=charge.amount.currency,
                appointment_id=charge.appointment_id, encounter_id=charge.encounter_id,
                patient_ref=charge.patient_ref, **common,
            )  # fmt: skip
        case b.ChargeReversed(charge=charge):
            # Posted on the day of the reversal, as the mapper posts it.
            return BillingItem(
                REVERSAL, event.reversed_charge_id, day=event.occurred_at.date(),
                amount_minor=charge.amount.amount_minor, currency=charge.amount.currency,
                **common,
            )  # fmt: skip
        case b.PaymentPosted(amount=amount):
            return BillingItem(
                PAYMENT, event.payment_id, day=event.received_on,
                amount_minor=amount.amount_minor, currency=amount.currency, **common,
            )  # fmt: skip
        case b.AdjustmentPosted(amount=amount):
            return BillingItem(
                ADJUSTMENT, event.adjustment_id, day=event.occurred_at.date(),
                amount_minor=amount.amount_minor, currency=amount.currency, **common,
            )  # fmt: skip
        case b.ClaimAdjudicatedV2(totals=totals):
            return BillingItem(
                CLAIM, event.claim_id, day=event.adjudicated_on,
                amount_minor=totals.paid.amount_minor, currency=totals.paid.currency, **common,
            )  # fmt: skip
    return None


def billing_items(events: Iterable[Event]) -> list[BillingItem]:
    """One item per distinct billing event (a re-driven copy repeats its event id)."""
    items: dict[str, BillingItem] = {}
    for event in events:
        item = billing_item(event)
        if item is not None:
            items.setdefault(item.event_id, item)
    return list(items.values())


def journal_requests(events: Iterable[Event]) -> dict[str, JournalEntryRequested]:
    return {e.journal_id: e for e in events if isinstance(e, JournalEntryRequested)}


def document_number(entry_id: int) -> str:
    """The ledger's document number of an entry (as the ERP poster's ledger gives it)."""
    return f"GL-{entry_id:010d}"


def _request_accounts(request: JournalEntryRequested) -> dict[tuple[str, str], tuple[int, int]]:
    sums: dict[tuple[str, str], tuple[int, int]] = {}
    for line in request.lines:
        key = (line.account, line.amount.currency)
        debit, credit = sums.get(key, (0, 0))
        amount = line.amount.amount_minor
        sums[key] = (
            (debit + amount, credit) if line.side is Side.DEBIT else (debit, credit + amount)
        )
    return sums


def _accepted_elsewhere(state: Mapping[str, Any] | None) -> bool:
    """Posted to a cloud ERP (no ledger entry of ours): it accepted the journal."""
    return state is not None and state["connector"] != "ledger" and bool(state["posted_at"])


def journals(
    requests: Mapping[str, JournalEntryRequested],
    entry_lines: Sequence[Mapping[str, Any]],
    states: Mapping[str, Mapping[str, Any]],
) -> list[Journal]:
    """Journals from their requests, ledger entries and states.

    ``entry_lines``: one row per (entry, account, currency) with ``entry_id``, ``journal_id``,
    ``site``, ``posting_date``, ``posted_at``, ``account``, ``currency``, ``debit``,
    ``credit``. ``states``: ``journal_status`` rows by journal id (``connector``, ``status``,
    ``posted_at``, ``document_number``, ``erp_request_id``). A journal the cloud ERP accepted
    has no ledger entry: its acceptance is its posting, and its request gives its lines."""
    entries: dict[str, dict[int, Posting]] = {}
    accounts: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
    where: dict[str, tuple[str, dt.date]] = {}
    for row in entry_lines:
        journal_id = row["journal_id"]
        entries.setdefault(journal_id, {})[row["entry_id"]] = Posting(
            document_number(row["entry_id"]), row["posted_at"]
        )
        sums = accounts.setdefault(journal_id, {})
        debit, credit = sums.get((row["account"], row["currency"]), (0, 0))
        sums[(row["account"], row["currency"])] = (debit + row["debit"], credit + row["credit"])
        where[journal_id] = (row["site"], row["posting_date"])
    found = []
    for journal_id in sorted(set(requests) | set(entries)):
        request = requests.get(journal_id)
        state = states.get(journal_id)
        postings = tuple(entries.get(journal_id, {}).values())
        lines = accounts.get(journal_id, {})
        if not postings and request is not None and _accepted_elsewhere(state):
            assert state is not None
            document = state["document_number"] or state["erp_request_id"] or journal_id
            postings = (Posting(document, state["posted_at"]),)
            lines = _request_accounts(request)
        site, day = (request.site, request.posting_date) if request else where[journal_id]
        found.append(
            Journal(
                journal_id,
                site,
                day,
                source_event_ids=request.source_event_ids if request else (),
                postings=postings,
                status=state["status"] if state else None,
                accounts=lines,
            )
        )
    return found


def exception_note(row: Mapping[str, Any], event: Event | None) -> ExceptionNote:
    """What an exception record is about: its event, the entity, the journal; ``event`` is
    the stored message decoded (None when it is not an event on a stream)."""
    event_ids = {row["event_id"]} if row["event_id"] else set()
    entities: set[str] = set()
    journal_ids: set[str] = set()
    if isinstance(event, Validated):
        event = event.original
    if isinstance(event, JournalEntryRequested):
        journal_ids.add(event.journal_id)
        event_ids.update(event.source_event_ids)
    elif event is not None:
        event_ids.add(event.event_id)
        stream = _STREAM_OF_DOMAIN.get(event.subject_tokens()[0])
        if stream is not None:
            entities.add(entity_of(stream, event))
    return ExceptionNote(
        row["id"], row["reason"], row["status"],
        frozenset(event_ids), frozenset(entities), frozenset(journal_ids),
    )  # fmt: skip
