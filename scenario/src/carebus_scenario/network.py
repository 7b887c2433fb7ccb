"""The regional network's master data: sites, their locations, departments, cost centres and
providers; the services they bill; the payers; and the cross-references the feeds need.

Source systems and how their codes resolve (the validator's documented order: the source
system's cross-reference, else the code as a canonical id, else a provider's NPI):

| Feed | source_system | provider | location, department | service | payer |
| --- | --- | --- | --- | --- | --- |
| HL7 SIU | ``CADENCE`` | local code (``DR1234``) via xref | canonical id | CPT code | - |
| FHIR / CSV | ``patient-portal`` / ``csv-import`` | NPI | canonical id | CPT code | - |
| HL7 DFT | ``RESOLUTE`` | NPI | canonical id | CPT code | plan code via xref |
| X12 835 | ``x12-835`` | - | - | CPT code | payer EDI id via xref |
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from carebus_scenario.config import ScenarioConfig
from carebus_scenario.npi import check_digit, new_npi

SIU_SOURCE = "CADENCE"
DFT_SOURCE = "RESOLUTE"
X12_SOURCE = "x12-835"
FHIR_SOURCE = "patient-portal"
CSV_SOURCE = "csv-import"


@dataclass(frozen=True)
class ServiceItem:
    code: str
    system: str  # CPT | HCPCS
    description: str
    revenue_code: str
    fee_minor: int  # chargemaster price per unit
    minutes: int
    evaluation: bool  # an E/M visit code (one per visit) rather than an ancillary


SERVICES: tuple[ServiceItem, ...] = (
    ServiceItem("99202", "CPT", "Office visit, new patient, 15-29 min", "0510", 13000, 20, True),
    ServiceItem("99203", "CPT", "Office visit, new patient, 30-44 min", "0510", 20000, 30, True),
    ServiceItem("99204", "CPT", "Office visit, new patient, 45-59 min", "0510", 30500, 45, True),
    ServiceItem("99212", "CPT", "Office visit, established, 10-19 min", "0510", 11000, 15, True),
    ServiceItem("99213", "CPT", "Office visit, established, 20-29 min", "0510", 16500, 20, True),
    ServiceItem("99214", "CPT", "Office visit, established, 30-39 min", "0510", 24000, 30, True),
    ServiceItem("99215", "CPT", "Office visit, established, 40-54 min", "0510", 33000, 40, True),
    ServiceItem("G0439", "HCPCS", "Annual wellness visit, subsequent", "0510", 19000, 40, True),
    ServiceItem("97110", "CPT", "Therapeutic exercise, each 15 min", "0420", 9500, 30, True),
    ServiceItem("93000", "CPT", "Electrocardiogram, complete", "0730", 6000, 10, False),
    ServiceItem("36415", "CPT", "Routine venipuncture", "0300", 2500, 5, False),
    ServiceItem("81002", "CPT", "Urinalysis, non-automated", "0300", 1800, 5, False),
    ServiceItem("87880", "CPT", "Strep A antigen test", "0300", 4500, 5, False),
    ServiceItem("90471", "CPT", "Immunization administration", "0771", 3500, 5, False),
)
SERVICE_BY_CODE = {s.code: s for s in SERVICES}


@dataclass(frozen=True)
class PayerItem:
    payer_id: str
    name: str
    payer_class: str  # contract PayerClass value
    plan_code: str  # the billing system's plan code (DFT FT1-14)
    edi_id: str  # the payer id on its 835 (N1*PR04)
    allowed_pct: int  # share of billed charges the payer allows
    weight: int  # relative share of patients covered
    active: bool = True


PAYERS: tuple[PayerItem, ...] = (
    PayerItem("PAY-MCR", "Medicare Part B", "medicare", "MCR-B", "04412", 52, 22),
    PayerItem("PAY-MCD", "State Medicaid", "medicaid", "MCD-ST", "77027", 45, 10),
    PayerItem("PAY-BCBS", "Blue Cross Blue Shield", "commercial", "BCBS-PPO", "00621", 68, 20),
    PayerItem("PAY-AET", "Aetna", "commercial", "AETNA-HMO", "60054", 66, 12),
    PayerItem("PAY-UHC", "UnitedHealthcare", "commercial", "UHC-CHOICE", "87726", 64, 14),
    PayerItem("PAY-CIG", "Cigna", "commercial", "CIGNA-OAP", "62308", 70, 8),
    PayerItem("PAY-TRI", "TRICARE East", "other_government", "TRICARE-E", "99726", 58, 4),
)
SELF_PAY_WEIGHT = 10
UNKNOWN_PLAN_CODE = "NEWPLAN-01"  # a plan the billing system added but master data lacks
UNKNOWN_PAYER_EDI = "99999"  # an 835 from a payer nobody registered

DEPARTMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (suffix, name, E/M and ancillary codes it bills)
    ("FM", "Family Medicine", ("99212", "99213", "99214", "99203", "36415", "81002", "90471")),
    ("IM", "Internal Medicine", ("99213", "99214", "99215", "99204", "G0439", "93000", "36415")),
    ("PED", "Pediatrics", ("99202", "99212", "99213", "87880", "90471")),
    ("CAR", "Cardiology", ("99204", "99214", "99215", "93000")),
    ("PT", "Physical Therapy", ("97110",)),
)
ZONES = ("America/Chicago", "America/Chicago", "America/Chicago", "America/Denver")
TOWNS = (
    "Ashford", "Bellvue", "Cedar Falls", "Dunmore", "Elkhart", "Fairview", "Glenwood",
    "Harlan", "Ironton", "Jasper", "Kenton", "Lakeside", "Marion", "Newport", "Oakdale",
    "Pinecrest", "Quincy", "Riverton", "Salem", "Trenton",
)  # fmt: skip
FAMILY = (
    "Garcia", "Nguyen", "Patel", "Okafor", "Smith", "Kowalski", "Haddad", "Johansson",
    "Rossi", "Kim", "Mensah", "Dubois", "Silva", "Novak", "Ortiz", "Weber",
)  # fmt: skip
GIVEN = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Grace", "Hugo", "Iris", "Jon", "Kai")


@dataclass(frozen=True)
class Provider:
    provider_id: str
    npi: str
    local_code: str  # the scheduling system's code (cross-referenced)
    family: str
    given: str
    department_id: str
    active: bool = True


@dataclass(frozen=True)
class Department:
    department_id: str
    name: str
    cost_centre_id: str
    location_id: str
    services: tuple[str, ...]


@dataclass
class Site:
    code: str
    name: str
    zone: str
    location_id: str
    cost_centre_id: str  # the site's own (location) cost centre
    departments: list[Department] = field(default_factory=list)
    providers: list[Provider] = field(default_factory=list)  # active ones
    retired: list[Provider] = field(default_factory=list)  # deactivated (fault material)

    def providers_of(self, department_id: str) -> list[Provider]:
        return [p for p in self.providers if p.department_id == department_id]


@dataclass
class Network:
    sites: list[Site]
    payers: tuple[PayerItem, ...] = PAYERS
    services: tuple[ServiceItem, ...] = SERVICES
    organisation_npi: str = ""

    def site(self, code: str) -> Site:
        return next(s for s in self.sites if s.code == code)

    # -- lookups the oracle uses (the validator's resolution order, modelled here) --------
    def provider_index(self) -> ProviderIndex:
        return ProviderIndex(self)


class ProviderIndex:
    """Providers by canonical id, NPI and local (SIU) code, active or not."""

    def __init__(self, network: Network) -> None:
        self.by_id: dict[str, Provider] = {}
        self.by_npi: dict[str, Provider] = {}
        self.by_local: dict[str, Provider] = {}
        for site in network.sites:
            for provider in [*site.providers, *site.retired]:
                self.by_id[provider.provider_id] = provider
                self.by_npi[provider.npi] = provider
                self.by_local[provider.local_code] = provider


def build_network(config: ScenarioConfig, rng: random.Random) -> Network:
    taken: set[str] = set()
    local_codes = iter(range(1001, 10_000))
    sites: list[Site] = []
    for n in range(1, config.sites + 1):
        code = f"SITE{n:02d}"
        town = TOWNS[(n - 1) % len(TOWNS)]
        name = f"{town} Clinic" if n <= len(TOWNS) else f"{town} Clinic {n // len(TOWNS) + 1}"
        site = Site(
            code=code,
            name=name,
            zone=ZONES[n % len(ZONES)],
            location_id=f"{code}-MAIN",
            cost_centre_id=f"CC-{code}-ADM",
        )
        # Every site has family medicine; larger ones add two or three specialties.
        chosen = [DEPARTMENTS[0], *rng.sample(DEPARTMENTS[1:], rng.randint(1, 3))]
        for suffix, dept_name, services in chosen:
            site.departments.append(
                Department(
                    department_id=f"{code}-{suffix}",
                    name=f"{dept_name} - {name}",
                    cost_centre_id=f"CC-{code}-{suffix}",
                    location_id=site.location_id,
                    services=services,
                )
            )
        for dept in site.departments:
            for _ in range(rng.randint(2, 3)):
                site.providers.append(_provider(rng, taken, next(local_codes), dept))
        # One retired provider per site: still cross-referenced, no longer active.
        site.retired.append(
            _provider(rng, taken, next(local_codes), site.departments[0], active=False)
        )
        sites.append(site)
    return Network(sites=sites, organisation_npi=_org_npi(rng, taken))


def _provider(
    rng: random.Random, taken: set[str], number: int, dept: Department, active: bool = True
) -> Provider:
    return Provider(
        provider_id=f"PRV-{number:05d}",
        npi=new_npi(rng, taken),
        local_code=f"DR{number}",
        family=rng.choice(FAMILY),
        given=rng.choice(GIVEN),
        department_id=dept.department_id,
        active=active,
    )


def _org_npi(rng: random.Random, taken: set[str]) -> str:
    while True:
        payload = "2" + "".join(str(rng.randrange(10)) for _ in range(8))
        npi = payload + check_digit(payload)
        if npi not in taken:
            taken.add(npi)
            return npi


# -- the master-data API payloads ---------------------------------------------------------
def masterdata_imports(network: Network) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(collection, records) in an order that satisfies referential integrity."""
    sites = network.sites
    yield (
        "cost-centres",
        [{"cost_centre_id": s.cost_centre_id, "name": f"{s.name} administration"} for s in sites]
        + [
            {"cost_centre_id": d.cost_centre_id, "name": d.name}
            for s in sites
            for d in s.departments
        ],
    )
    yield (
        "locations",
        [
            {
                "location_id": s.location_id,
                "name": s.name,
                "site_code": s.code,
                "place_of_service": "11",
                "time_zone": s.zone,
                "cost_centre_id": s.cost_centre_id,
            }
            for s in sites
        ],
    )
    yield (
        "departments",
        [
            {
                "department_id": d.department_id,
                "name": d.name,
                "cost_centre_id": d.cost_centre_id,
                "location_id": d.location_id,
            }
            for s in sites
            for d in s.departments
        ],
    )
    yield (
        "providers",
        [
            {
                "provider_id": p.provider_id,
                "npi": p.npi,
                "name": f"{p.given} {p.family}",
                "department_id": p.department_id,
                "active": p.active,
            }
            for s in sites
            for p in [*s.providers, *s.retired]
        ],
    )
    yield (
        "services",
        [
            {
                "service_code": s.code,
                "code_system": s.system,
                "description": s.description,
                "revenue_code": s.revenue_code,
            }
            for s in network.services
        ],
    )
    yield (
        "payers",
        [
            {"payer_id": p.payer_id, "name": p.name, "payer_class": p.payer_class}
            for p in network.payers
        ],
    )
    xrefs: list[dict[str, Any]] = []
    for s in sites:
        for p in [*s.providers, *s.retired]:
            xrefs.append(_xref(SIU_SOURCE, "provider", p.local_code, p.provider_id))
    for payer in network.payers:
        xrefs.append(_xref(DFT_SOURCE, "payer", payer.plan_code, payer.payer_id))
        xrefs.append(_xref(X12_SOURCE, "payer", payer.edi_id, payer.payer_id))
    yield "cross-references", xrefs


def _xref(source: str, kind: str, code: str, canonical: str) -> dict[str, Any]:
    return {"source_system": source, "kind": kind, "source_code": code, "canonical_id": canonical}


def record_count(network: Network) -> int:
    return sum(len(records) for _, records in masterdata_imports(network))
