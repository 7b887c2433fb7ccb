"""The pure parts of the scheduling adapter: FHIR and CSV mapping rules, and the HL7 use case
with a recording sink (no servers: these are unit tests of single functions)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js import api

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.csv.layout import CsvLayout, MappingError
from carebus_scheduling_adapter.adapters.csv.rows import RowProblem, row_to_event
from carebus_scheduling_adapter.adapters.fhir.appointment import (
    BundleContext,
    FhirSource,
    appointment_to_event,
    content_hash,
)
from carebus_scheduling_adapter.adapters.fhir.bundle import read_appointments
from carebus_scheduling_adapter.adapters.fhir.resources import Appointment, ContextResource
from carebus_scheduling_adapter.handlers.hl7_messages import Hl7Messages
from carebus_shared.fhir.decoding import decode
from carebus_shared.fhir.outcome import FhirProblem
from carebus_shared.hl7 import parse_message
from carebus_shared.intake import EventStream
from carebus_shared.jetstream.publish import Tally
from tests.support.scheduling import siu_message

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = FhirSource("fhir", "SITE01", NOW)


def _appt(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "start": "2025-03-10T09:00:00Z",
        "minutesDuration": 15,
        "participant": [{"actor": {"reference": "Patient/p1"}}],
    }
    resource.update(changes)
    return resource


def _event(resource: dict[str, Any], context: BundleContext | None = None) -> Event:
    raw = json.dumps(resource).encode()
    appt = decode(raw, Appointment, "Appointment")
    return appointment_to_event(
        appt, raw=raw, method="POST", fhir_id=None, source=SOURCE, context=context
    )


def test_fhir_minutes_duration_gives_the_end_and_the_literal_patient_id_is_the_reference() -> None:
    event = _event(_appt())
    appt = event.appointment  # type: ignore[attr-defined]
    assert appt.slot_end == datetime(2025, 3, 10, 9, 15, tzinfo=UTC)
    assert appt.patient_ref == "p1"
    assert appt.appointment_id == "a1"  # no identifier: the FHIR id
    assert event.event_type == "scheduling.appointment.booked"


def test_fhir_practitioner_role_resolves_to_the_practitioner_npi() -> None:
    practitioner = decode(
        json.dumps(
            {
                "resourceType": "Practitioner",
                "id": "pr1",
                "identifier": [
                    {"value": "LOCAL-9"},
                    {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                ],
            }
        ).encode(),
        ContextResource,
        "Practitioner",
    )
    role = decode(
        b'{"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/pr1"}}',
        ContextResource,
        "PractitionerRole",
    )
    context = BundleContext({"Practitioner/pr1": practitioner, "urn:uuid:r1": role})
    participants = [
        {"actor": {"reference": "Patient/p1"}},
        {"actor": {"reference": "urn:uuid:r1"}},
    ]
    event = _event(_appt(participant=participants), context)
    assert event.appointment.provider_code == "1234567893"  # type: ignore[attr-defined]


def test_fhir_absolute_references_resolve_by_type_and_id() -> None:
    location = decode(
        b'{"resourceType":"Location","id":"l1","identifier":[{"value":"ROOM-4"}]}',
        ContextResource,
        "Location",
    )
    participants = [
        {"actor": {"reference": "Patient/p1"}},
        {"actor": {"reference": "https://ehr.example/fhir/Location/l1"}},
    ]
    event = _event(_appt(participant=participants), BundleContext({"Location/l1": location}))
    assert event.appointment.location_code == "ROOM-4"  # type: ignore[attr-defined]


def test_fhir_event_id_without_version_is_a_content_hash_insensitive_to_layout() -> None:
    compact = json.dumps(_appt(), separators=(",", ":")).encode()
    spaced = json.dumps(_appt(), indent=2, sort_keys=True).encode()
    assert content_hash(compact) == content_hash(spaced)
    changed = json.dumps(_appt(status="cancelled")).encode()
    assert content_hash(changed) != content_hash(compact)
    assert _event(_appt()).event_id == f"fhir:fhir:a1:{content_hash(compact)}"


def test_a_bundle_without_appointments_is_refused_whole() -> None:
    raw = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"resource": {"resourceType": "Patient"}}],
        }
    ).encode()
    with pytest.raises(FhirProblem) as caught:
        read_appointments(raw, SOURCE)
    assert caught.value.reason == "no_appointment"


def test_bundle_context_resources_of_unusual_shape_do_not_break_the_bundle() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            # QuestionnaireResponse.identifier is a single Identifier, not a list.
            {"resource": {"resourceType": "QuestionnaireResponse", "identifier": {"value": "q"}}},
            {"resource": _appt(), "request": {"method": "POST", "url": "Appointment"}},
        ],
    }
    result = read_appointments(json.dumps(bundle).encode(), SOURCE)
    assert [e.resource_type for e in result.entries] == ["QuestionnaireResponse", "Appointment"]
    assert len(result.events) == 1


def _row(**values: str) -> Event:
    base = {
        "appointment_id": "A1",
        "status": "booked",
        "slot_start": "2025-03-10 09:00",
        "duration_minutes": "30",
        "patient_ref": "MRN-1",
    }
    base.update(values)
    return row_to_event(
        {k: v for k, v in base.items() if v},
        CsvLayout(),
        source_system="csv",
        site=None,
        default_tz="America/Chicago",
        recorded_at=NOW,
        fallback_version_ms=1,
    )


@pytest.mark.parametrize(
    ("status", "event", "expected"),
    [
        ("Scheduled", "", "booked"),
        ("no-show", "", "no_show"),
        ("Checked In", "", "checked_in"),
        ("canceled", "", "cancelled"),
        ("fulfilled", "", "completed"),
        ("booked", "rescheduled", "rescheduled"),
        ("arrived", "modified", "checked_in"),  # the status change is the event
    ],
)
def test_csv_status_words_and_events(status: str, event: str, expected: str) -> None:
    assert _row(status=status, event=event).event_type == f"scheduling.appointment.{expected}"


@pytest.mark.parametrize(
    ("values", "field", "reason"),
    [
        ({"status": "booked", "event": "cancelled"}, "event", "event_status_mismatch"),
        ({"event": "moved"}, "event", "unknown_event"),
        ({"duration_minutes": "0"}, "duration_minutes", "invalid_number"),
        ({"duration_minutes": ""}, "slot_end", "missing_value"),
        ({"appointment_id": ""}, "appointment_id", "missing_value"),
        ({"updated_at": "yesterday"}, "updated_at", "invalid_datetime"),
    ],
)
def test_csv_row_problems_name_the_field(values: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(RowProblem) as caught:
        _row(**values)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_csv_naive_times_are_read_in_the_default_zone_and_the_id_is_the_row_hash() -> None:
    first, same = _row(), _row()
    assert first.appointment.slot_start.isoformat() == "2025-03-10T09:00:00-05:00"  # type: ignore[attr-defined]
    assert first.event_id == same.event_id
    assert _row(reason="other").event_id != first.event_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns]\nappointment_id = 3\n", "values must be strings"),
        ("[columns]\nwhen = 'x'\n", "unknown keys: when"),
        ("[format]\ndelimiter = ';;'\n", "one character"),
        ("[format]\ntimezone = 'Mars/Olympus'\n", "is unknown"),
        ("[extras]\n", "unknown mapping sections"),
        ("not toml = = 1", "not valid TOML"),
    ],
)
def test_mapping_files_are_checked(text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        CsvLayout.from_toml(text)


class RecordingSink:
    def __init__(self) -> None:
        self.published: list[Event] = []
        self.rejected: list[dict[str, Any]] = []

    async def publish(
        self, source: str, events: Sequence[Event], *, inputs: int = 1
    ) -> list[api.PubAck]:
        self.published.extend(events)
        return [api.PubAck(stream="SCHEDULING", seq=i) for i, _ in enumerate(events)]

    async def reject(self, **kwargs: Any) -> None:
        headers: Mapping[str, str] | None = kwargs.get("headers")
        self.rejected.append({**kwargs, "headers": dict(headers or {})})

    def stream(self, source: str) -> EventStream:
        sink = self

        class _Stream:
            async def publish(self, events: Iterable[Event], *, inputs: int = 0) -> None:
                sink.published.extend(events)

            async def confirmed(self) -> Tally:
                return Tally(published=len(sink.published))

        return _Stream()


async def test_hl7_event_ids_tell_a_reused_control_id_from_a_retransmission() -> None:
    sink = RecordingSink()
    hl7 = Hl7Messages(sink, default_tz="UTC", clock=lambda: NOW)
    original = siu_message("C1")
    retransmitted = original.replace(b"20250301120000-0600", b"20250301120500-0600", 1)  # MSH-7
    reused = siu_message("C1", slot="20250311091500-0600")
    ids = [await hl7.process(parse_message(m)) for m in (original, retransmitted, reused)]
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]
    assert all(i.startswith("hl7:CADENCE:SITE01:C1:") for i in ids)


async def test_hl7_handler_keeps_the_raw_message_before_answering_ae() -> None:
    sink = RecordingSink()
    handler = Hl7Messages(sink, default_tz="UTC").mllp_handler()
    raw = siu_message("C2", slot="")
    ack = parse_message(await handler(raw))
    assert ack.segment("MSA").value(1) == "AE"  # type: ignore[union-attr]
    [kept] = sink.rejected
    assert kept["raw"] == raw
    assert kept["reason"] == "required_field_missing"
    assert kept["path"] == "SCH-11"
    assert kept["site"] == "SITE01"
    assert sink.published == []


async def test_a_mapping_bug_answers_ae_and_keeps_the_message_instead_of_stalling_the_feed() -> (
    None
):
    def broken_clock() -> datetime:
        raise ZeroDivisionError

    sink = RecordingSink()
    handler = Hl7Messages(sink, default_tz="UTC", clock=broken_clock).mllp_handler()
    ack = parse_message(await handler(siu_message("C3")))
    assert ack.segment("MSA").value(1) == "AE"  # type: ignore[union-attr]
    assert ack.segment("ERR").value(3) == "207"  # type: ignore[union-attr]
    [kept] = sink.rejected
    assert kept["reason"] == "internal_error"
