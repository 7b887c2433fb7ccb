"""Billing readiness: a completed visit as a charge capture trigger for the billing system.

HL7 v2: ADT^A03 ("end visit"), the event billing systems already key charge capture on
(a DFT^P03 carries charges, which the scheduling side does not have). FHIR R4: the visit's
Encounter with status ``finished``, created conditionally on its identifier. Both are built
from the event alone (MSH-7 is its recorded time), so a resend is byte for byte the same.
Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carebus_contracts.validated import ValidatedAppointmentCompleted
from carebus_shared.hl7.encoding import DEFAULT_ENCODING, escape
from carebus_shared.hl7.timestamps import format_dtm

FEED = "billing-readiness"
SENDING_APPLICATION = "CAREBUS"
HL7_VERSION = "2.5.1"
APPOINTMENT_SYSTEM = "urn:carebus:appointment"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


@dataclass(frozen=True, slots=True)
class Receiver:
    application: str
    facility: str


def _e(value: str | None) -> str:
    return escape(value or "", DEFAULT_ENCODING)


def _ts(moment: datetime) -> str:
    return format_dtm(moment)


def adt_a03(event: ValidatedAppointmentCompleted, control_id: str, to: Receiver) -> bytes:
    """The ADT^A03 for a completed visit (segments joined by CR, no MLLP framing)."""
    appt, enrich = event.original.appointment, event.enrichment
    site = _e(event.site)
    provider = enrich.provider_npi or enrich.provider_id or appt.provider_code
    id_type = "NPI" if enrich.provider_npi else ""
    location = enrich.location_id or appt.location_code
    msh = [
        "MSH", DEFAULT_ENCODING.msh2, SENDING_APPLICATION, site, _e(to.application),
        _e(to.facility), _ts(event.recorded_at), "", "ADT^A03^ADT_A03", control_id, "P",
        HL7_VERSION,
    ]  # fmt: skip
    evn = ["EVN", "A03", _ts(event.recorded_at), "", "", "", _ts(event.occurred_at)]
    pid = ["PID", "1", "", f"{_e(appt.patient_ref)}^^^{site}^MR"]
    pv1 = ["PV1", "1", "O", f"{_e(location)}^^^{site}"] + [""] * 3
    pv1 += [f"{_e(provider)}^^^^^^^^^^^^{id_type}" if provider else ""]  # PV1-7 attending
    pv1 += [""] * 2 + [_e(enrich.service_code or appt.service_code)]  # PV1-10 service
    pv1 += [""] * 8 + [f"{_e(appt.appointment_id)}^^^CAREBUS^VN"]  # PV1-19 visit number
    pv1 += [""] * 24 + [_ts(appt.slot_start), _ts(appt.slot_end)]  # PV1-44/45
    segments = ["|".join(msh), "|".join(evn), "|".join(pid), "|".join(pv1)]
    return "\r".join(segments).encode()


def encounter(event: ValidatedAppointmentCompleted) -> dict[str, Any]:
    """The finished Encounter of a completed visit (FHIR R4)."""
    appt, enrich = event.original.appointment, event.enrichment
    identifier = {"system": APPOINTMENT_SYSTEM, "value": appt.appointment_id}
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [identifier],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
        },
        "subject": {
            "identifier": {"system": f"urn:carebus:patient:{event.site}", "value": appt.patient_ref}
        },
        "appointment": [{"identifier": identifier}],
        "period": {"start": appt.slot_start.isoformat(), "end": appt.slot_end.isoformat()},
    }
    if enrich.provider_npi:
        resource["participant"] = [
            {"individual": {"identifier": {"system": NPI_SYSTEM, "value": enrich.provider_npi}}}
        ]
    location = enrich.location_id or appt.location_code
    if location:
        resource["location"] = [
            {"location": {"identifier": {"system": "urn:carebus:location", "value": location}}}
        ]
    service = enrich.service_code or appt.service_code
    if service:
        resource["serviceType"] = {"coding": [{"system": "urn:carebus:service", "code": service}]}
    return resource


def conditional_on(event: ValidatedAppointmentCompleted) -> str:
    """The If-None-Exist search: one Encounter per visit, however often it is sent."""
    return f"identifier={APPOINTMENT_SYSTEM}|{event.original.appointment.appointment_id}"
