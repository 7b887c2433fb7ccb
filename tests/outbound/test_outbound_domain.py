"""The outbound feeds' pure parts: control ids, the messages built, the outcome of an answer."""

from __future__ import annotations

import msgspec
import pytest
from carebus_outbound.config import Settings
from carebus_outbound.domain import billing_readiness as br
from carebus_outbound.domain.delivery import (
    Accepted,
    Refused,
    Retrying,
    Unreachable,
    control_id,
    outcome,
)

from carebus_contracts import scheduling as s
from carebus_contracts.validated import ValidatedAppointmentCompleted
from carebus_shared.hl7.message import parse_message
from carebus_shared.jetstream.stage import Forward, Reject, Retry
from tests.support.mapper import appointment, validate

RETRYING = Retrying(base_s=1.0, max_s=60.0, max_deliveries=5, rand=lambda: 0.5)


def _completed() -> ValidatedAppointmentCompleted:
    event = validate(appointment(s.AppointmentCompleted, "A|1", 2))
    assert isinstance(event, ValidatedAppointmentCompleted)
    return event


def test_a_control_id_is_the_events_own_and_fits_msh_10() -> None:
    assert control_id("billing-readiness", "evt-1") == control_id("billing-readiness", "evt-1")
    assert control_id("billing-readiness", "evt-1") != control_id("billing-readiness", "evt-2")
    assert control_id("billing-readiness", "evt-1") != control_id("status-webhook", "evt-1")
    assert len(control_id("billing-readiness", "evt-1")) == 20


def test_the_adt_a03_is_the_same_bytes_every_time_and_escapes_its_values() -> None:
    event, to = _completed(), br.Receiver("BILLING", "HQ")
    first = br.adt_a03(event, "CB1", to)
    assert first == br.adt_a03(event, "CB1", to)  # a resend is the same message
    message = parse_message(first)
    msh = message.segments[0]
    assert (msh.value(9), msh.value(9, 2), msh.value(10), msh.value(5)) == (
        "ADT", "A03", "CB1", "BILLING",
    )  # fmt: skip
    pv1 = next(x for x in message.segments if x.name == "PV1")
    assert pv1.value(19) == "A|1"  # escaped on the wire, read back whole
    assert b"A\\F\\1" in first


def test_the_encounter_is_finished_and_created_once_per_visit() -> None:
    event = _completed()
    resource = br.encounter(event)
    assert (resource["resourceType"], resource["status"]) == ("Encounter", "finished")
    assert resource["identifier"] == [{"system": br.APPOINTMENT_SYSTEM, "value": "A|1"}]
    assert br.conditional_on(event) == f"identifier={br.APPOINTMENT_SYSTEM}|A|1"


def test_answers_become_outcomes() -> None:
    common = {"site": "SITE01", "event_id": "evt-1", "feed": "billing-readiness"}
    assert outcome(Accepted("AA"), 1, RETRYING, **common) == Forward()
    refused = outcome(Refused("AE", "receiver_error", "bad PV1"), 1, RETRYING, **common)
    assert isinstance(refused, Reject)
    assert (refused.category, refused.reason) == ("receiver_rejection", "receiver_error")
    # Retried with backoff (half of 1 s doubled per delivery here), at least Retry-After.
    assert outcome(Unreachable("connect"), 1, RETRYING, **common) == Retry(0.5)
    assert outcome(Unreachable("connect"), 3, RETRYING, **common) == Retry(2.0)
    assert outcome(Unreachable("busy", 7.0), 1, RETRYING, **common) == Retry(7.0)
    exhausted = outcome(Unreachable("timeout"), 5, RETRYING, **common)
    assert isinstance(exhausted, Reject)
    assert (exhausted.category, exhausted.reason) == ("transport", "deliveries_exhausted")


def test_each_sites_channel_is_checked_when_settings_load() -> None:
    settings = msgspec.convert({"billing_site_channels": "SITE02=fhir"}, Settings)
    assert (settings.channel_for("SITE02"), settings.channel_for("SITE01")) == ("fhir", "off")
    with pytest.raises(msgspec.ValidationError, match="channel"):
        msgspec.convert({"billing_site_channels": "SITE02=fax"}, Settings)


def test_billing_readiness_is_off_until_a_channel_is_set() -> None:
    assert not msgspec.convert({}, Settings).billing_on()
    some = msgspec.convert({"billing_site_channels": "SITE02=hl7,SITE03=off"}, Settings)
    assert some.billing_on()
    assert (some.channel_for("SITE02"), some.channel_for("SITE03")) == ("hl7", "off")
