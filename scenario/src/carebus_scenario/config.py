"""What a scenario is made of: the size of the network, the day, the channel mix and faults.

Everything the generator draws comes from one ``random.Random(seed)``, so a configuration
always yields the same inputs byte for byte (ids carry ``tag``, derived from the seed unless
given, so two scenarios played into the same suite never collide).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class FaultMix:
    """Share of each population that carries a fault; each kind appears at least once when
    its share is above zero (so a small scenario still exercises every kind)."""

    unknown_provider: float = 0.02  # appointments whose provider code matches nothing
    inactive_provider: float = 0.02  # appointments with a deactivated (retired) provider
    unknown_payer: float = 0.02  # visits billed to a plan code nobody cross-referenced
    malformed_hl7: float = 0.01  # extra SIU/DFT messages the adapters must refuse
    unbalanced_835: float = 0.01  # extra remittance files that do not balance
    unknown_payer_835: float = 0.01  # remittance files from a payer id nobody knows
    duplicates: float = 0.03  # inputs sent twice (HL7 retransmissions, repeated uploads)
    out_of_order: float = 0.25  # rescheduled appointments whose update arrives late

    def scaled(self, factor: float) -> FaultMix:
        return FaultMix(**{k: v * factor for k, v in vars(self).items()})


@dataclass(frozen=True)
class ScenarioConfig:
    seed: int = 20250310
    # The network (master data) has its own seed, so scenarios played into one suite one
    # after the other (the demo, again and again) share the same master data.
    network_seed: int = 40
    sites: int = 40
    # Visits on the day per site (plus future bookings, about a third of that).
    appointments_per_site: int = 60
    day: dt.date = dt.date(2025, 3, 10)
    # Channels of the scheduling feed (the rest is HL7 SIU over MLLP).
    fhir_share: float = 0.12
    csv_share: float = 0.05
    # Earlier visits settled by today's remittances, per visit of the day.
    remittance_claims_per_visit: float = 0.45
    remittance_files_per_payer: int = 1
    # Where the billing adapter files remittance events (its CAREBUS_BILLING_ADAPTER_DEFAULT_SITE):
    # an 835 names a payee, not a site; the validator books what names a claim to the claim's
    # site, so only what names none (a PLB) is posted here.
    remittance_site: str = "CBO"
    # Remittances go half by upload, half by the inbox folder when one is given.
    use_inbox: bool = True
    faults: FaultMix = field(default_factory=FaultMix)
    tag: str = ""

    @property
    def run_tag(self) -> str:
        return self.tag or f"R{self.seed % 1_000_000:06d}"

    def with_(self, **changes: object) -> ScenarioConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


SMALL = ScenarioConfig(sites=3, appointments_per_site=24)
"""The end-to-end test's scenario: a few sites, a few hundred events, every fault kind."""
