"""What the readers make of contract events, ledger rows and exception records (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from carebus_contracts import billing as b
from carebus_contracts.envelope import Event
from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.examples import build_examples
from carebus_contracts.registry import decode, encode
from carebus_contracts.scheduling import AppointmentCompleted
from carebus_shared.reconcile import sources
from carebus_shared.reconcile.domain import (
    ADJUSTMENT,
    CHARGE,
    CLAIM,
    PAYMENT,
    REVERSAL,
    Posting,
)

EXAMPLES: list[Event] = [event for event, _ in build_examples()]
AT = dt.datetime(2025, 3, 10, 18, 0, tzinfo=dt.UTC)


def of_type(event_type: str) -> list[Event]:
    return [e for e in EXAMPLES if e.event_type == event_type]


def test_a_visit_is_the_newest_version_of_its_appointment() -> None:
    scheduling = [e for e in EXAMPLES if e.event_type.startswith("scheduling.")]
    # A request (no slot yet) is not a visit: only the appointment's own versions count.
    versions = [e for e in scheduling if hasattr(e, "appointment")]
    assert len(versions) < len(scheduling)
    (visit,) = sources.visits(scheduling)
    completed = of_type("scheduling.appointment.completed")[0]
    assert isinstance(completed, AppointmentCompleted)
    assert (visit.appointment_id, visit.site, visit.status) == ("A1001", "SITE01", "completed")
    assert visit.day == dt.date(2025, 3, 14)  # the slot's own (local) date
    assert (visit.event_id, visit.entity) == (completed.event_id, "SCHEDULING:A1001")
    assert visit.event_ids == {e.event_id for e in versions}
    assert visit.patient_ref == completed.appointment.patient_ref
    assert "patient_ref" not in repr(visit)  # never printed by accident


def test_billing_events_become_items_on_the_day_they_post() -> None:
    billing = [e for e in EXAMPLES if e.event_type.startswith("billing.")]
    items = {(i.kind, i.entity_id): i for i in sources.billing_items(billing + billing)}
    assert len(items) == 5  # each event once; the v1 and v2 claim examples are one claim
    charge = items[(CHARGE, "CH-5001")]
    posted = of_type("billing.charge.posted")[0]
    assert isinstance(posted, b.ChargePosted)
    assert (charge.day, charge.amount_minor, charge.currency) == (
        posted.charge.service_date, posted.charge.amount.amount_minor, "USD",
    )  # fmt: skip
    assert (charge.entity, charge.patient_ref) == ("BILLING:CH-5001", posted.charge.patient_ref)
    reversed_ = of_type("billing.charge.reversed")[0]
    assert isinstance(reversed_, b.ChargeReversed)
    # Named by the charge it reverses; posted on the day of the reversal, as the mapper does.
    reversal = items[(REVERSAL, reversed_.reversed_charge_id)]
    assert reversal.day == reversed_.occurred_at.date()
    payment = of_type("billing.payment.posted")[0]
    assert isinstance(payment, b.PaymentPosted)
    assert items[(PAYMENT, "PAY-9001")].day == payment.received_on
    assert items[(ADJUSTMENT, "ADJ-1")].amount_minor > 0
    assert (CLAIM, "CLM-3001") in items


def test_an_old_claim_version_is_read_through_its_upcaster() -> None:
    v1 = next(e for e in of_type("billing.claim.adjudicated") if e.schema_version == "1.0")
    event = decode(encode(v1), "billing.claim.adjudicated", "1.0")
    item = sources.billing_item(event)
    assert item is not None
    assert (item.kind, item.entity_id) == (CLAIM, "CLM-3001")


def request() -> JournalEntryRequested:
    found = of_type("erp.journal.requested")[0]
    assert isinstance(found, JournalEntryRequested)
    return found


def entry_rows(journal_id: str, *entry_ids: int) -> list[dict[str, Any]]:
    return [
        {"entry_id": n, "journal_id": journal_id, "site": "SITE01",
         "posting_date": dt.date(2025, 3, 10), "posted_at": AT, "account": account,
         "currency": "USD", "debit": debit, "credit": credit}
        for n in entry_ids
        for account, debit, credit in (("1200", 12500, 0), ("4000", 0, 12500))
    ]  # fmt: skip


def state(connector: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"connector": connector, "status": status, "posted_at": AT,
            "document_number": None, "erp_request_id": None, **extra}  # fmt: skip


def test_a_journal_joins_its_request_its_ledger_entries_and_its_state() -> None:
    req = request()
    (journal,) = sources.journals(
        {req.journal_id: req},
        entry_rows(req.journal_id, 7, 9),
        {req.journal_id: state("ledger", "confirmed")},
    )
    assert (journal.site, journal.day, journal.status) == (req.site, req.posting_date, "confirmed")
    assert journal.source_event_ids == req.source_event_ids
    assert journal.postings == (Posting("GL-0000000007", AT), Posting("GL-0000000009", AT))
    assert journal.accounts == {("1200", "USD"): (25000, 0), ("4000", "USD"): (0, 25000)}


def test_a_journal_the_cloud_erp_accepted_is_posted_once_with_its_requested_lines() -> None:
    req = request()
    accepted = state("http", "pending", erp_request_id="ERP-77")
    (journal,) = sources.journals({req.journal_id: req}, [], {req.journal_id: accepted})
    assert journal.postings == (Posting("ERP-77", AT),)
    assert journal.status == "pending"
    debits = sum(line.amount.amount_minor for line in req.lines if line.side == "debit")
    assert sum(d for d, _ in journal.accounts.values()) == debits
    # Not accepted yet (no posted_at), or a ledger journal without its entry: not posted.
    for kept in (state("http", "pending", posted_at=None), state("ledger", "pending")):
        (unposted,) = sources.journals({req.journal_id: req}, [], {req.journal_id: kept})
        assert unposted.postings == ()


def test_a_ledger_entry_without_a_request_in_the_window_is_still_a_journal() -> None:
    (journal,) = sources.journals({}, entry_rows("JE-ELSEWHERE", 3), {})
    assert (journal.journal_id, journal.site, journal.source_event_ids) == (
        "JE-ELSEWHERE", "SITE01", (),
    )  # fmt: skip
    assert journal.status is None


def row(record_id: int, event_id: str | None = None) -> dict[str, Any]:
    return {"id": record_id, "reason": "unknown_payer", "status": "open", "event_id": event_id}


def test_an_exception_names_the_event_its_entity_and_journal() -> None:
    validated = of_type("validated.charge.posted")[0]
    note = sources.exception_note(row(1, validated.event_id), validated)
    original = of_type("billing.charge.posted")[0]
    assert note.event_ids == {validated.event_id, original.event_id}
    assert note.entities == {"BILLING:CH-5001"}
    assert note.journal_ids == frozenset()
    note = sources.exception_note(row(2, "evt-x"), request())
    assert note.journal_ids == {request().journal_id}
    assert note.event_ids == {"evt-x", *request().source_event_ids}
    assert note.text == "exception 2: unknown_payer (open)"
    # Raw input an adapter kept (not an event): only its event id, if any.
    assert sources.exception_note(row(3), None).event_ids == frozenset()


def test_no_view_carries_a_patient_reference_into_its_text() -> None:
    billing = [e for e in EXAMPLES if e.event_type.startswith("billing.")]
    for item in sources.billing_items(billing):
        assert "MRN" not in repr(item)
    assert (
        "MRN"
        not in msgspec.json.encode(
            [repr(v) for v in sources.visits(of_type("scheduling.appointment.booked"))]
        ).decode()
    )


def test_a_sites_filters_take_subjects_with_and_without_their_partition() -> None:
    """The e2e reconcile found nothing at all once subjects had a partition token: its
    filter ended at the site (docs/decisions/030)."""
    from carebus_contracts import subject_for
    from carebus_shared.reconcile.readers import site_subject

    event = {type(e): e for e, _ in build_examples()}[AppointmentCompleted]
    concrete = subject_for(event)
    legacy = concrete.rsplit(".", 1)[0]
    new_form, old_form = site_subject("scheduling", event.site)

    def takes(pattern: str, subject: str) -> bool:
        want, have = pattern.split("."), subject.split(".")
        return len(want) == len(have) and all(
            w in ("*", h) for w, h in zip(want, have, strict=True)
        )

    assert takes(new_form, concrete)
    assert takes(old_form, legacy)
    assert not takes(new_form, concrete.replace(event.site, "ELSEWHERE"))
