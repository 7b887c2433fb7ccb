"""Which site a remittance event is booked to (pure; docs/decisions/021).

An 835 names a payee, not a site, but its CLP01 is the claim the billing system submitted,
and the billing system submits one claim per encounter (CLM01 = the visit number it sent as
the charges' ``encounter_id``). So the charges the validator forwards make a *claim index*
(claim id → site, location, patient account, charges), and a payment, adjustment or claim
adjudication naming a claim is booked to that claim's site:

1. the claim is in the index: its site (``SiteSource.CLAIM``);
2. else the payee's NPI is cross-referenced to a location (source system of the event, kind
   ``location``, code = the NPI) whose site is known: that site (``SiteSource.PAYEE``);
3. else the event waits in quarantine (``unknown_claim``) until the claim's first charge,
   or that cross-reference, arrives.

An event naming no claim (a provider-level PLB adjustment, a copay) keeps its own site, or
the payee's location's when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from carebus_contracts.billing import (
    AdjustmentPosted,
    ChargePosted,
    ChargeReversed,
    ClaimAdjudicatedV2,
    PaymentPosted,
)
from carebus_contracts.envelope import Event
from carebus_contracts.masterdata import EntityKind, Location
from carebus_contracts.validated import Enrichment, SiteSource
from carebus_masterdata_validator.domain.validation import Failure
from carebus_masterdata_validator.domain.view import MasterDataView, in_effect, xref_key

UNKNOWN_CLAIM: Final = "unknown_claim"


def claim_key(claim_id: str) -> str:
    """The wait key of a remittance event parked for want of its claim."""
    return f"claim:{claim_id}"


@dataclass(frozen=True, slots=True)
class ClaimSite:
    """What the index holds about a claim: where its charges were booked."""

    site: str
    location_id: str | None


@dataclass(frozen=True, slots=True)
class ClaimCharge:
    """One charge (or its reversal) as the claim index records it."""

    claim_id: str
    charge_id: str
    site: str
    location_id: str | None
    patient_ref: str
    amount_minor: int  # signed: a reversal takes the charge off the claim
    currency: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Booking:
    site: str
    source: SiteSource
    location_id: str | None


def is_remittance(event: Event) -> bool:
    """Whether ``event`` is booked by :func:`book` (a payment, adjustment or adjudication)."""
    return isinstance(event, PaymentPosted | AdjustmentPosted | ClaimAdjudicatedV2)


def claim_of(event: Event) -> str | None:
    """The claim a remittance event names (None: not a remittance event, or no claim)."""
    if isinstance(event, PaymentPosted | AdjustmentPosted | ClaimAdjudicatedV2):
        return event.claim_id or None
    return None


def charge_of(event: Event, enrichment: Enrichment) -> ClaimCharge | None:
    """The claim-index entry of a validated charge; None when it names no encounter."""
    if not isinstance(event, ChargePosted | ChargeReversed):
        return None
    charge = event.charge
    if not charge.encounter_id:
        return None
    sign = -1 if isinstance(event, ChargeReversed) else 1
    return ClaimCharge(
        claim_id=charge.encounter_id,
        charge_id=charge.charge_id,
        site=event.site,
        location_id=enrichment.location_id,
        patient_ref=charge.patient_ref,
        amount_minor=sign * charge.amount.amount_minor,
        currency=charge.amount.currency,
        event_id=event.event_id,
    )


def _payee_location(view: MasterDataView, event: Event, on: date) -> Location | None:
    npi = getattr(event, "payee_npi", None)
    if not npi:
        return None
    xref = view.xrefs.get((event.source_system, EntityKind.LOCATION, npi))
    if xref is None or not in_effect(xref, on):
        return None
    location = view.locations.get(xref.canonical_id)
    if location is None or not location.site_code or not in_effect(location, on):
        return None
    return location


def _on(event: Event) -> date:
    match event:
        case PaymentPosted():
            return event.received_on
        case ClaimAdjudicatedV2():
            return event.adjudicated_on
    return event.occurred_at.date()


def book(
    view: MasterDataView, event: Event, claims: Mapping[str, ClaimSite]
) -> Booking | Failure | None:
    """The booking site of a remittance event, or why it must wait; None: its own site."""
    if not is_remittance(event):
        return None
    claim_id = claim_of(event)
    if claim_id is not None:
        found = claims.get(claim_id)
        if found is not None:
            return Booking(found.site, SiteSource.CLAIM, found.location_id)
    on = _on(event)
    payee = _payee_location(view, event, on)
    if payee is not None and payee.site_code:
        return Booking(payee.site_code, SiteSource.PAYEE, payee.location_id)
    if claim_id is None:
        return None
    waits = [claim_key(claim_id)]
    npi = getattr(event, "payee_npi", None)
    if npi:
        waits.append(xref_key(event.source_system, EntityKind.LOCATION, npi))
    return Failure(
        UNKNOWN_CLAIM,
        "$.claim_id",
        claim_id,
        "the claim matches no encounter of a charge seen yet, and the payee's NPI is "
        "cross-referenced to no location with a site",
        tuple(waits),
    )
