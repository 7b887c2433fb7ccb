"""The order check the scale-out tests rely on (``checker.order_inversions``) sees an
inversion when a stage put out two events of one entity in another order than its input."""

from __future__ import annotations

from carebus_scenario.checker import JournalRequest, Observed, StoredEvent, order_inversions


def _appointment(seq: int, event_id: str, version: int, appointment: str = "A1") -> StoredEvent:
    body = {
        "event_id": event_id,
        "event_type": "scheduling.appointment.booked",
        "site": "SITE01",
        "entity_version": version,
        "appointment": {"appointment_id": appointment},
    }
    return StoredEvent("SCHEDULING", seq, event_id, body)


def test_outputs_in_their_inputs_order_are_no_inversion() -> None:
    observed = Observed(
        events=[_appointment(1, "e1", 1), _appointment(2, "e2", 2)],
        validated={10: "e1", 11: "e2"},
        requests=[JournalRequest(20, "r1", "j1", ("e1",)), JournalRequest(21, "r2", "j2", ("e2",))],
    )
    assert order_inversions(observed) == []


def test_two_events_of_one_entity_out_of_order_are_an_inversion_at_that_hop() -> None:
    observed = Observed(
        events=[_appointment(1, "e1", 1), _appointment(2, "e2", 2), _appointment(3, "x", 1, "A2")],
        validated={10: "e2", 11: "x", 12: "e1"},  # the validator swapped A1's two
        requests=[JournalRequest(21, "r2", "j2", ("e2",)), JournalRequest(22, "r1", "j1", ("e1",))],
    )
    found = order_inversions(observed)
    assert len(found) == 1
    assert found[0].startswith("validator: a appointment at SITE01: input 1 came out after")


def test_the_mapper_hop_is_judged_on_the_validated_order() -> None:
    observed = Observed(
        events=[_appointment(1, "e1", 1), _appointment(2, "e2", 2)],
        validated={10: "e1", 11: "e2"},
        requests=[JournalRequest(20, "r2", "j2", ("e2",)), JournalRequest(21, "r1", "j1", ("e1",))],
    )
    assert [f.split(":")[0] for f in order_inversions(observed)] == ["mapper"]
