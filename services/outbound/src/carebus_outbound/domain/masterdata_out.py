"""Master data out: provider, location and service changes as the subscribed scheduling
systems take them. HL7 v2: MFN^M02 (staff and practitioner master file: MFE, STF, PRA),
MFN^M05 (patient locations: LOC), MFN^M04 (charge description master: CDM). FHIR R4: a
Practitioner, Location or HealthcareService, put by conditional update on its identifier
(created the first time, replaced after), so sending it twice leaves one resource. Built
from the event alone, so a resend is the same bytes. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carebus_contracts import masterdata as md
from carebus_outbound.domain.billing_readiness import NPI_SYSTEM, SENDING_APPLICATION, Receiver
from carebus_shared.hl7.encoding import DEFAULT_ENCODING, escape
from carebus_shared.hl7.timestamps import format_dtm

FEED = "masterdata-out"
HL7_VERSION = "2.5.1"
PROVIDER_SYSTEM = "urn:carebus:provider"
LOCATION_SYSTEM = "urn:carebus:location"
SERVICE_SYSTEM = "urn:carebus:service"

Change = md.ProviderChanged | md.LocationChanged | md.ServiceChanged


@dataclass(frozen=True, slots=True)
class Put:
    """A FHIR conditional update: ``PUT {base}/{path}``."""

    path: str
    resource: dict[str, Any]


def _e(value: str | None) -> str:
    return escape(value or "", DEFAULT_ENCODING)


def _mfe_action(change: md.ChangeKind) -> str:
    # MUP: update (the receiver adds what it does not have); MDC: deactivate (HL7 0180).
    return "MDC" if change is md.ChangeKind.DEACTIVATED else "MUP"


def _msh(event: Change, trigger: str, control_id: str, to: Receiver) -> str:
    return "|".join(
        [
            "MSH", DEFAULT_ENCODING.msh2, SENDING_APPLICATION, SENDING_APPLICATION,
            _e(to.application), _e(to.facility), format_dtm(event.recorded_at), "",
            f"MFN^{trigger}^MFN_{trigger}", control_id, "P", HL7_VERSION,
        ]
    )  # fmt: skip


def mfn(event: Change, control_id: str, to: Receiver) -> bytes:
    """The MFN message for one change (segments joined by CR, no MLLP framing)."""
    action, effective = _mfe_action(event.change), format_dtm(event.occurred_at)
    if isinstance(event, md.ProviderChanged):
        p = event.provider
        key = _e(p.provider_id)
        segments = [
            _msh(event, "M02", control_id, to),
            "MFI|PRA^Practitioner master file^HL70175||UPD|||AL",
            f"MFE|{action}|{_e(event.event_id)}|{effective}|{key}|CWE",
            f"STF|{key}|{_e(p.npi)}^^^NPI|{_e(p.name)}|||||{'A' if p.active else 'I'}",
            f"PRA|{key}||||||{_e(p.npi)}^NPI",
        ]
    elif isinstance(event, md.LocationChanged):
        loc = event.location
        key = f"{_e(loc.location_id)}^^^{_e(loc.site_code)}"
        segments = [
            _msh(event, "M05", control_id, to),
            "MFI|LOC^Location master file^HL70175||UPD|||AL",
            f"MFE|{action}|{_e(event.event_id)}|{effective}|{key}|PL",
            f"LOC|{key}|{_e(loc.name)}|C||||{_e(loc.place_of_service)}",
        ]
    else:
        svc = event.service
        key = f"{_e(svc.service_code)}^{_e(svc.description)}^{svc.code_system.value}"
        segments = [
            _msh(event, "M04", control_id, to),
            "MFI|CDM^Charge description master file^HL70175||UPD|||AL",
            f"MFE|{action}|{_e(event.event_id)}|{effective}|{key}|CWE",
            f"CDM|{key}||{_e(svc.description)}||||||{'Y' if svc.active else 'N'}",
        ]
    return "\r".join(segments).encode()


def _status(active: bool, change: md.ChangeKind) -> bool:
    return active and change is not md.ChangeKind.DEACTIVATED


def put(event: Change) -> Put:
    """The FHIR resource for one change, and where it is put."""
    if isinstance(event, md.ProviderChanged):
        p = event.provider
        ids = [{"system": NPI_SYSTEM, "value": p.npi},
               {"system": PROVIDER_SYSTEM, "value": p.provider_id}]  # fmt: skip
        practitioner = {
            "resourceType": "Practitioner",
            "identifier": ids,
            "active": _status(p.active, event.change),
            "name": [{"text": p.name}],
        }
        return Put(f"Practitioner?identifier={NPI_SYSTEM}|{p.npi}", practitioner)
    if isinstance(event, md.LocationChanged):
        loc = event.location
        location: dict[str, Any] = {
            "resourceType": "Location",
            "identifier": [{"system": LOCATION_SYSTEM, "value": loc.location_id}],
            "status": "active" if _status(loc.active, event.change) else "inactive",
            "name": loc.name,
        }
        if loc.site_code:
            location["managingOrganization"] = {
                "identifier": {"system": "urn:carebus:site", "value": loc.site_code}
            }
        return Put(f"Location?identifier={LOCATION_SYSTEM}|{loc.location_id}", location)
    svc = event.service
    service = {
        "resourceType": "HealthcareService",
        "identifier": [{"system": SERVICE_SYSTEM, "value": svc.service_code}],
        "active": _status(svc.active, event.change),
        "type": [
            {
                "coding": [
                    {
                        "system": f"urn:carebus:{svc.code_system.value.lower()}",
                        "code": svc.service_code,
                        "display": svc.description,
                    }
                ]
            }
        ],
    }
    return Put(f"HealthcareService?identifier={SERVICE_SYSTEM}|{svc.service_code}", service)
