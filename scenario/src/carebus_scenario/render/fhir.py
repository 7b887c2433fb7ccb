"""FHIR R4 Appointment resources, as a patient portal creates (POST) and updates (PUT) them.

References carry identifiers (no Bundle): the Patient's MRN, the Practitioner's NPI and the
Location's id; ``specialty`` is the department and ``serviceType`` the CPT code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CPT = "http://www.ama-assn.org/go/cpt"

# Canonical event → FHIR status.
FHIR_STATUS: dict[str, str] = {
    "booked": "booked",
    "modified": "booked",
    "checked_in": "arrived",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
}


def appointment(
    *,
    appointment_id: str,
    version: int,
    updated_at: dt.datetime,
    event: str,
    patient_ref: str,
    provider_id: str,
    provider_npi: str,
    location_id: str,
    department_id: str,
    service_code: str,
    slot_start: dt.datetime,
    slot_end: dt.datetime,
    reason: str | None = None,
) -> bytes:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id,
        "meta": {"versionId": str(version), "lastUpdated": updated_at.isoformat()},
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "FILL"}]}, "value": appointment_id}
        ],
        "status": FHIR_STATUS[event],
        "serviceType": [{"coding": [{"system": CPT, "code": service_code}]}],
        "specialty": [{"coding": [{"code": department_id}]}],
        "start": slot_start.isoformat(),
        "end": slot_end.isoformat(),
        "participant": [
            {
                "actor": {
                    "reference": f"Patient/{patient_ref}",
                    "identifier": {"value": patient_ref},
                },
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": f"Practitioner/{provider_id}",
                    "identifier": {"system": NPI_SYSTEM, "value": provider_npi},
                },
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": f"Location/{location_id}",
                    "identifier": {"value": location_id},
                },
                "status": "accepted",
            },
        ],
    }
    if reason and event in ("cancelled", "no_show"):
        resource["cancelationReason"] = {"text": reason}
    return msgspec.json.encode(resource)
