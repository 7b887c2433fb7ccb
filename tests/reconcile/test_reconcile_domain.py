"""The comparison of the three views, on hand-made views: what it counts, which differences it
finds, and what explains them."""

from __future__ import annotations

import datetime as dt

from carebus_shared.reconcile.domain import (
    ADJUSTED_WITHOUT_POSTING,
    ADJUSTMENT,
    CHARGE,
    CHARGED_WITHOUT_POSTING,
    COMPLETED_WITHOUT_CHARGE,
    PAID_WITHOUT_POSTING,
    PAYMENT,
    POSTED_TWICE,
    POSTED_WITHOUT_CONFIRMATION,
    REVERSAL,
    VISITS,
    BillingItem,
    Difference,
    ExceptionNote,
    Journal,
    Posting,
    SiteDay,
    Timing,
    Views,
    Visit,
    reconcile,
)

DAY = dt.date(2025, 3, 10)
NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)
EARLIER = dt.datetime(2025, 3, 10, 18, 0, tzinfo=dt.UTC)
TIMING = Timing(NOW, settle=dt.timedelta(minutes=15), charge_lag=dt.timedelta(days=1))


def visit(appointment_id: str, *, status: str = "completed", patient: str = "P1",
          site: str = "S1", day: dt.date = DAY, at: dt.datetime = EARLIER) -> Visit:  # fmt: skip
    return Visit(
        appointment_id, site, day, status, f"ev-{appointment_id}", at, patient,
        entity=f"SCHEDULING:{appointment_id}", event_ids=frozenset({f"ev-{appointment_id}"}),
    )  # fmt: skip


def item(kind: str, entity_id: str, amount: int = 12500, *, site: str = "S1",
         day: dt.date = DAY, at: dt.datetime = EARLIER, patient: str | None = "P1",
         appointment_id: str | None = None, encounter_id: str | None = None,
         currency: str = "USD") -> BillingItem:  # fmt: skip
    return BillingItem(
        kind, entity_id, f"ev-{kind}-{entity_id}", site, day, amount, currency, at,
        entity=f"BILLING:{entity_id}", appointment_id=appointment_id,
        encounter_id=encounter_id, patient_ref=patient,
    )  # fmt: skip


def journal(journal_id: str, *sources: str, postings: int = 1, status: str | None = "confirmed",
            site: str = "S1", day: dt.date = DAY, at: dt.datetime = EARLIER,
            accounts: dict[tuple[str, str], tuple[int, int]] | None = None) -> Journal:  # fmt: skip
    booked = tuple(Posting(f"GL-{journal_id}-{n}", at) for n in range(postings))
    return Journal(journal_id, site, day, sources, booked, status, accounts or {})


def only(result: list[SiteDay]) -> SiteDay:
    assert len(result) == 1
    return result[0]


def kinds(site_day: SiteDay) -> list[tuple[str, str, bool]]:
    return [(d.kind, d.entity_id, d.explained) for d in site_day.differences]


def test_a_day_where_everything_matches_has_no_difference_and_its_figures_side_by_side() -> None:
    charge = item(CHARGE, "CH1", 12500)
    payment = item(PAYMENT, "PAY1", 2000, patient=None)
    views = Views(
        visits=[visit("A1"), visit("A2", status="cancelled")],
        billing=[charge, payment],
        journals=[
            journal("J-A1", "ev-A1", accounts={("9040", "XXX"): (1, 0), ("9099", "XXX"): (0, 1)}),
            journal("J-CH1", charge.event_id, accounts={("1200", "USD"): (12500, 0),
                                                        ("4000", "USD"): (0, 12500)}),
            journal("J-PAY1", payment.event_id, accounts={("1010", "USD"): (2000, 0),
                                                          ("1200", "USD"): (0, 2000)}),
        ],
    )  # fmt: skip
    site_day = only(reconcile(views, [DAY], TIMING))
    assert site_day.differences == []
    assert (site_day.unexplained, site_day.explained) == (0, 0)
    visits = site_day.figures[VISITS]
    assert (visits.count, visits.matched, visits.posted, visits.confirmed) == (1, 1, 1, 1)
    charges = site_day.figures["charges"]
    assert (charges.count, charges.sums, charges.posted, charges.posted_sums) == (
        1, {"USD": 12500}, 1, {"USD": 12500},
    )  # fmt: skip
    assert site_day.figures["payments"].sums == {"USD": 2000}
    assert (site_day.journals, site_day.postings, site_day.confirmed) == (3, 3, 3)
    assert site_day.accounts[("1200", "USD")] == [12500, 2000]
    assert site_day.accounts[("9040", "XXX")] == [1, 0]


def test_a_charge_links_to_its_visit_by_appointment_encounter_or_patient_and_day() -> None:
    views = Views(
        visits=[visit("A1", patient="P1"), visit("A2", patient="P2"), visit("A3", patient="P3"),
                visit("A4", patient="P4")],
        billing=[
            item(CHARGE, "CH1", patient="other", appointment_id="A1"),
            item(CHARGE, "CH2", patient="other", encounter_id="A2"),
            item(CHARGE, "CH3", patient="P3"),
            # The same patient on another day, and at another site, is another visit.
            item(CHARGE, "CH4", patient="P4", day=DAY + dt.timedelta(days=1)),
            item(CHARGE, "CH5", patient="P4", site="S2"),
        ],
    )  # fmt: skip
    site_day = reconcile(views, [DAY], TIMING, sites=["S1"])
    missing = [d for d in only(site_day).differences if d.kind == COMPLETED_WITHOUT_CHARGE]
    assert [(d.entity, d.entity_id, d.explained) for d in missing] == [("appointment", "A4", False)]
    assert only(site_day).figures[VISITS].matched == 3


def test_a_charge_reversal_does_not_count_as_the_visit_being_charged() -> None:
    views = Views(visits=[visit("A1")], billing=[item(REVERSAL, "CH1", patient="P1")])
    assert (COMPLETED_WITHOUT_CHARGE, "A1", False) in kinds(only(reconcile(views, [DAY], TIMING)))


def test_a_completed_visit_without_charge_is_explained_by_an_exception_on_its_appointment() -> None:
    # The appointment is parked behind its booking's unknown provider: the record names the
    # booking's event, the completion is queued behind it (same entity).
    note = ExceptionNote(7, "unknown_provider", "open", frozenset({"ev-booked"}),
                         frozenset({"SCHEDULING:A1"}))  # fmt: skip
    views = Views(visits=[visit("A1")], exceptions=[note])
    (difference,) = only(reconcile(views, [DAY], TIMING)).differences
    assert difference.kind == COMPLETED_WITHOUT_CHARGE
    assert difference.exception_id == 7
    assert difference.explanation == "exception 7: unknown_provider (open)"


def test_a_visit_completed_within_the_charge_lag_is_in_flight() -> None:
    recent = NOW - dt.timedelta(hours=3)
    views = Views(visits=[visit("A1", at=recent)])
    (difference,) = only(reconcile(views, [DAY], TIMING)).differences
    assert difference.explained
    assert difference.explanation == "completed 3 h ago (in flight)"
    strict = Timing(NOW, charge_lag=dt.timedelta(0))
    assert not only(reconcile(views, [DAY], strict)).differences[0].explained


def test_billing_items_without_a_posting_are_named_by_kind_with_their_amount() -> None:
    charge, reversal = item(CHARGE, "CH1", 12500), item(REVERSAL, "CH2", 4000)
    payment, adjustment = item(PAYMENT, "PAY1", 2000), item(ADJUSTMENT, "ADJ1", 300)
    zero = item(PAYMENT, "PAY0", 0)  # a denied claim's payment posts nothing
    unposted = journal("J-CH1", charge.event_id, postings=0, status=None)
    views = Views(
        visits=[visit("A1")],
        billing=[charge, reversal, payment, adjustment, zero],
        journals=[unposted],
    )
    site_day = only(reconcile(views, [DAY], TIMING))
    assert sorted(kinds(site_day)) == [
        (ADJUSTED_WITHOUT_POSTING, "ADJ1", False),
        (CHARGED_WITHOUT_POSTING, "CH1", False),
        (CHARGED_WITHOUT_POSTING, "CH2", False),
        (PAID_WITHOUT_POSTING, "PAY1", False),
    ]
    (ch1,) = [d for d in site_day.differences if d.entity_id == "CH1"]
    assert (ch1.entity, ch1.amount_minor, ch1.currency, ch1.journal_ids) == (
        CHARGE, 12500, "USD", ("J-CH1",),
    )  # fmt: skip
    assert site_day.figures["charges"].posted == 0
    assert site_day.figures["payments"].sums == {"USD": 2000}


def test_what_explains_a_billing_item_without_posting() -> None:
    by_event = item(CHARGE, "CH1")
    queued_behind = item(REVERSAL, "CH2")  # its charge is parked: same entity
    rejected = item(CHARGE, "CH3")
    in_flight = item(PAYMENT, "PAY1", at=NOW - dt.timedelta(minutes=5))
    discarded = item(ADJUSTMENT, "ADJ1")
    notes = [
        ExceptionNote(1, "unknown_payer", "open", frozenset({by_event.event_id})),
        ExceptionNote(2, "unknown_payer", "open", frozenset({"ev-other"}),
                      frozenset({"BILLING:CH2"})),
        ExceptionNote(3, "erp_validation", "open", journal_ids=frozenset({"J-CH3"})),
        ExceptionNote(4, "unknown_payer", "discarded", frozenset({discarded.event_id})),
    ]  # fmt: skip
    views = Views(
        billing=[by_event, queued_behind, rejected, in_flight, discarded],
        journals=[journal("J-CH3", rejected.event_id, postings=0, status="rejected")],
        exceptions=notes,
    )
    site_day = only(reconcile(views, [DAY], TIMING))
    assert site_day.unexplained == 0
    found = {d.entity_id: (d.exception_id, d.explanation) for d in site_day.differences}
    assert found == {
        "CH1": (1, "exception 1: unknown_payer (open)"),
        "CH2": (2, "exception 2: unknown_payer (open)"),
        "CH3": (3, "exception 3: erp_validation (open)"),
        "PAY1": (None, "recorded 5 min ago (in flight)"),
        "ADJ1": (4, "exception 4: unknown_payer (discarded)"),
    }


def test_a_journal_booked_twice_is_one_difference_naming_both_documents() -> None:
    charge = item(CHARGE, "CH1")
    views = Views(
        billing=[charge],
        journals=[journal("J-CH1", charge.event_id, postings=2,
                          accounts={("1200", "USD"): (25000, 0), ("4000", "USD"): (0, 25000)})],
    )  # fmt: skip
    site_day = only(reconcile(views, [DAY], TIMING))
    (difference,) = site_day.differences
    assert difference == Difference(
        POSTED_TWICE, "S1", DAY, CHARGE, "CH1", ("J-CH1",), ("GL-J-CH1-0", "GL-J-CH1-1")
    )
    assert not difference.explained
    assert (site_day.journals, site_day.postings, site_day.confirmed) == (1, 2, 1)
    assert site_day.accounts[("4000", "USD")] == [0, 25000]


def test_one_source_event_posted_by_two_journals_is_posted_twice_once() -> None:
    # A replay under a new rule-set version: new journal id, same source event.
    charge = item(CHARGE, "CH1")
    views = Views(
        billing=[charge],
        journals=[journal("J-v1", charge.event_id), journal("J-v2", charge.event_id)],
    )
    (difference,) = only(reconcile(views, [DAY], TIMING)).differences
    assert (difference.kind, difference.entity_id) == (POSTED_TWICE, "CH1")
    assert difference.journal_ids == ("J-v1", "J-v2")
    assert difference.documents == ("GL-J-v1-0", "GL-J-v2-0")


def test_a_journal_with_no_known_source_is_reported_by_its_own_id() -> None:
    views = Views(journals=[journal("J-X", "ev-unknown", postings=2)])
    (difference,) = only(reconcile(views, [DAY], TIMING)).differences
    assert (difference.kind, difference.entity, difference.entity_id) == (
        POSTED_TWICE, "journal", "J-X",
    )  # fmt: skip


def test_posted_without_confirmation_unless_recent_or_explained() -> None:
    charge, late, rejected = item(CHARGE, "CH1"), item(CHARGE, "CH2"), item(CHARGE, "CH3")
    views = Views(
        billing=[charge, late, rejected],
        journals=[
            journal("J-CH1", charge.event_id, status="pending"),
            journal("J-CH2", late.event_id, status=None, at=NOW - dt.timedelta(minutes=2)),
            journal("J-CH3", rejected.event_id, status="rejected"),
        ],
        exceptions=[ExceptionNote(9, "erp_rejected_async", "open",
                                  journal_ids=frozenset({"J-CH3"}))],
    )  # fmt: skip
    site_day = only(reconcile(views, [DAY], TIMING))
    found = {(d.kind, d.entity_id): d.explanation for d in site_day.differences}
    assert found == {
        (POSTED_WITHOUT_CONFIRMATION, "CH1"): None,
        (POSTED_WITHOUT_CONFIRMATION, "CH2"): "posted 2 min ago (in flight)",
        (POSTED_WITHOUT_CONFIRMATION, "CH3"): "exception 9: erp_rejected_async (open)",
    }
    (ch1,) = [d for d in site_day.differences if d.entity_id == "CH1"]
    assert (ch1.journal_ids, ch1.documents) == (("J-CH1",), ("GL-J-CH1-0",))
    assert site_day.confirmed == 0


def test_only_the_days_and_sites_asked_for_and_unexplained_first() -> None:
    views = Views(
        visits=[
            visit("A1", site="S1"),
            visit("A2", site="S2"),
            visit("A3", site="S2", day=DAY - dt.timedelta(days=1)),
            visit("A4", site="S2", at=NOW),
        ]
    )
    every = reconcile(views, [DAY], TIMING)
    assert [(r.site, r.day) for r in every] == [("S1", DAY), ("S2", DAY)]
    assert [d.entity_id for d in every[1].differences] == ["A2", "A4"]
    assert [d.explained for d in every[1].differences] == [False, True]
    two_days = reconcile(views, [DAY - dt.timedelta(days=1), DAY], TIMING, sites=["S2"])
    assert [(r.site, r.day) for r in two_days] == [
        ("S2", DAY - dt.timedelta(days=1)),
        ("S2", DAY),
    ]
    assert reconcile(views, [DAY], TIMING, sites=["S9"]) == []


def test_a_journal_is_counted_on_its_own_posting_day() -> None:
    # A charge of the 10th whose journal posts on the 11th: posted for the charge's day, and
    # in the ledger figures of the 11th.
    charge = item(CHARGE, "CH1")
    views = Views(
        billing=[charge], journals=[journal("J", charge.event_id, day=DAY + dt.timedelta(days=1))]
    )
    tenth, eleventh = reconcile(views, [DAY, DAY + dt.timedelta(days=1)], TIMING)
    assert (tenth.figures["charges"].posted, tenth.journals) == (1, 0)
    assert (eleventh.figures["charges"].count, eleventh.journals) == (0, 1)
    assert tenth.differences == eleventh.differences == []
