"""SIU mapping rules on small hand-made messages (samples are covered elsewhere)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebus_scheduling_adapter.adapters.hl7_siu import Hl7MappingError, map_siu

CHICAGO = ZoneInfo("America/Chicago")
NPI_XCN = "1234567893^Doe^Jane^^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI"


def siu(trigger: str = "S12", sch25: str = "Booked", **overrides: str) -> str:
    segments = {
        "MSH": f"MSH|^~\\&|CADENCE|SITE01|CAREBUS|HUB|20250310091500||SIU^{trigger}|C1|P|2.5.1",
        "SCH": (
            f"SCH|P100^EPIC|F200^EPIC||||CANC^Patient request|FOLLOWUP^Follow-up|NORMAL|30|min|"
            f"^^^20250314100000||||||||||||||{sch25}"
        ),
        "PID": "PID|1||ALT1~MRN-9^^^HOSP^MR||Doe^John",
        "PV1": f"PV1|1|O|CLIN1^R2^^MAIN||||{NPI_XCN}|||CARDIO",
        "RGS": "RGS|1",
        "AIS": "AIS|1||99213^Office visit^CPT|20250314100000|||30|min",
        "AIG": "AIG|1||ECHO1^Echo machine|E^Equipment",
        "AIL": "AIL|1||CLIN1^R2^^MAIN",
        "AIP": "AIP|1||DRX^Smith^Ann|D^Doctor",
        "ZXY": "ZXY|ignored",
    }
    segments.update(overrides)
    return "\r".join(s for s in segments.values() if s)


def test_booked_appointment_fields() -> None:
    appt = map_siu(siu(), default_tz="America/Chicago")
    assert (appt.event, appt.status) == ("booked", "booked")
    assert appt.appointment_id == "F200"
    assert (appt.placer_appointment_id, appt.filler_appointment_id) == ("P100", "F200")
    assert appt.start == datetime(2025, 3, 14, 10, tzinfo=CHICAGO)
    assert appt.end - appt.start == appt.duration == timedelta(minutes=30)
    assert appt.start.utcoffset() == timedelta(hours=-5)  # CDT after 9 March 2025
    assert (appt.patient.id, appt.patient.assigning_authority) == ("MRN-9", "HOSP")
    assert (appt.source_system, appt.site, appt.control_id) == ("CADENCE", "SITE01", "C1")
    assert appt.service is not None
    assert appt.service.code == "99213"
    assert appt.reason is not None
    assert appt.reason.code == "FOLLOWUP"
    assert appt.location is not None
    assert appt.location.point_of_care == "CLIN1"
    assert appt.department is not None
    assert appt.department.code == "CARDIO"
    roles = {(p.role, p.id): p for p in appt.providers}
    assert ("performer", "DRX") in roles
    attending = roles[("attending", "1234567893")]
    assert attending.npi == "1234567893"
    assert attending.id_type == "NPI"
    assert [r.code for r in appt.resources] == ["ECHO1"]  # equipment is not a provider
    assert ("resource", "ECHO1") not in roles


@pytest.mark.parametrize(
    ("trigger", "event", "status"),
    [
        ("S13", "rescheduled", "booked"),
        ("S14", "modified", "booked"),
        ("S15", "cancelled", "cancelled"),
        ("S16", "cancelled", "cancelled"),
        ("S17", "cancelled", "cancelled"),
        ("S26", "no_show", "no_show"),
    ],
)
def test_trigger_events(trigger: str, event: str, status: str) -> None:
    appt = map_siu(siu(trigger), default_tz="UTC")
    assert (appt.event, appt.status) == (event, status)


def test_deleted_is_cancelled_with_reason() -> None:
    appt = map_siu(
        siu("S17", SCH=siu().split("\r")[1].replace("CANC^Patient request", "")), default_tz="UTC"
    )
    assert appt.cancellation_reason == "deleted"
    appt = map_siu(siu("S15"), default_tz="UTC")
    assert appt.cancellation_reason == "Patient request"


@pytest.mark.parametrize(
    ("sch25", "event", "status"),
    [("Complete", "completed", "completed"), ("Checked In", "checked_in", "checked_in"),
     ("Arrived", "checked_in", "checked_in"), ("Noshow", "no_show", "no_show")],
)  # fmt: skip
def test_status_changes_in_sch25(sch25: str, event: str, status: str) -> None:
    appt = map_siu(siu("S14", sch25), default_tz="UTC")
    assert (appt.event, appt.status, appt.filler_status) == (event, status, sch25)


def test_terminal_trigger_wins_over_stale_sch25() -> None:
    assert map_siu(siu("S15", "Booked"), default_tz="UTC").status == "cancelled"


def test_tq1_and_offsets_take_precedence() -> None:
    text = siu(TQ1="TQ1|||||||202503141000+0100|202503141045+0100")
    appt = map_siu(text, default_tz="America/Chicago")
    assert appt.start.utcoffset() == timedelta(hours=1)
    assert appt.duration == timedelta(minutes=45)


def test_sch9_duration_fallback_in_hours() -> None:
    sch = "SCH|P1|F1|||||||2|h|^^^20250314100000"
    appt = map_siu(siu(SCH=sch, AIS="", AIG="", AIL="", AIP=""), default_tz="UTC")
    assert appt.duration == timedelta(hours=2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SCH": "SCH|P1|F1", "AIS": "", "AIG": "", "AIL": "", "AIP": ""}, "SCH-11: no slot start"),
        ({"SCH": "SCH|||", "AIS": ""}, "SCH-2: no placer (SCH-1) or filler appointment id"),
        ({"PID": ""}, "PID: no PID segment"),
        ({"PID": "PID|1||"}, "PID-3: no patient identifier"),
        ({"SCH": "SCH|1|2", "AIS": "AIS|1||X|2025031410xx"},
         "AIS-4: not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"),
        ({"AIS": "AIS|1||X|20250314100000|||30|fortnights", "SCH": "SCH|1|2"},
         "AIS-7: duration unit is not a known unit"),
    ],
)  # fmt: skip
def test_mapping_errors_name_the_field(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(Hl7MappingError) as info:
        map_siu(siu(**overrides), default_tz="UTC")
    assert str(info.value) == message
    assert info.value.ack_code == "AE"


def test_unsupported_trigger_and_type_are_rejected() -> None:
    with pytest.raises(Hl7MappingError) as info:
        map_siu(siu("S18"), default_tz="UTC")
    assert (info.value.reason, info.value.ack_code) == ("unsupported_trigger_event", "AR")
    adt = siu(SCH="").replace("SIU^S12", "ADT^A05")
    with pytest.raises(Hl7MappingError) as info:
        map_siu(adt, default_tz="UTC")
    assert info.value.reason == "unsupported_message_type"


def test_adt_with_sch_is_accepted() -> None:
    appt = map_siu(siu().replace("SIU^S12", "ADT^A60"), default_tz="UTC")
    assert appt.event == "modified"
    assert appt.message_type == "ADT^A60"


def test_unsupported_version() -> None:
    with pytest.raises(Hl7MappingError) as info:
        map_siu(siu().replace("|2.5.1", "|2.2"), default_tz="UTC")
    assert info.value.reason == "unsupported_version"


def test_to_contract_round_trips_through_msgspec() -> None:
    import msgspec

    from carebus_contracts import scheduling as s
    from carebus_scheduling_adapter.adapters.hl7_siu_contract import to_contract

    appt = map_siu(siu("S15"), default_tz="America/Chicago")
    recorded = datetime(2025, 3, 10, 15, 0, tzinfo=ZoneInfo("UTC"))
    event = to_contract(appt, recorded_at=recorded)
    assert isinstance(event, s.AppointmentCancelled)
    assert event.event_id == "hl7:CADENCE:SITE01:C1"
    assert event.appointment.status == s.AppointmentStatus.CANCELLED
    assert event.appointment.reason == "Patient request"
    assert event.appointment.provider_code == "DRX"
    decoded = msgspec.json.decode(msgspec.json.encode(event), type=s.AppointmentCancelled)
    assert decoded == event
