"""A day in the network: the scheduling feed, the charges of completed visits, the payers'
remittance files, and the faults a real feed has, as the inputs the adapters receive.

The day, per site:

* the morning schedule load books the day's visits (SIU S12, 06:00 onwards); during the day
  some are rescheduled (S13), cancelled (S15), checked in (S14 "Arrived") and completed
  (S14 "Complete") or marked no-show (S26); appointments for the coming weeks are booked,
  some rescheduled or cancelled again;
* each completed visit is billed (DFT^P03: the visit code and its ancillaries) within two
  hours; insured patients pay a copay at check-in, self-pay patients at the desk (FT1 PY);
  a few charges entered in error are credited back (FT1 CD);
* the payers' 835 files settle claims of earlier visits: payments, contractual adjustments
  (CO-45), patient responsibility (PR-1/2/3), denials (CO-50), prompt-pay interest (PLB L6)
  and one claim reversed (CLP02 = 22) and re-adjudicated; the charges of those earlier visits
  (DFT^P03, the visit number being the claim's id) are sent first, as the *opening* inputs.

Channels: most appointments come over HL7 SIU/MLLP, some from the patient portal (FHIR) and a
few in the CSV export of a satellite clinic; every input of one appointment goes through one
channel, in order (its *lane*), as one source system would send it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from carebus_scenario.appointments import Schedule
from carebus_scenario.charges import Billing
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.day import Day
from carebus_scenario.faults import Faults
from carebus_scenario.model import Delivery
from carebus_scenario.network import Network, build_network
from carebus_scenario.remittances import Remittances
from carebus_scenario.scheduling_feed import SchedulingFeed


@dataclass(frozen=True)
class Scenario:
    config: ScenarioConfig
    network: Network
    deliveries: list[Delivery]

    @property
    def events(self) -> int:
        """Canonical events the inputs carry (repeats included): the offered load."""
        return sum(len(d.facts) for d in self.deliveries)

    def channels(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.deliveries:
            counts[d.channel] = counts.get(d.channel, 0) + 1
        return counts


def generate(config: ScenarioConfig) -> Scenario:
    """The day of ``config``; the same configuration always gives the same inputs.

    The parts draw from the day's one random stream in the order below: keep it.
    """
    day = Day(config, build_network(config, random.Random(config.network_seed)))
    schedule, feed, billing = Schedule(day), SchedulingFeed(day), Billing(day)
    remittances = Remittances(day)
    faults = Faults(day, schedule, billing, remittances)
    appts = [appt for site in day.network.sites for appt in schedule.book(site)]
    faults.assign_provider_faults(appts)
    for appt in appts:
        feed.deliver(appt)
    feed.deliver_csv()
    billing.bill(appts)
    remittances.settle(appts)
    faults.faulty_remittances()
    remittances.open_claims()
    faults.malformed()
    faults.duplicates()
    return Scenario(config, day.network, day.in_order())
