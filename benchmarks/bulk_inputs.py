"""The pipeline benchmark's bulk inputs: one large 835 file and one large CSV export, each a
scenario of its own (the network of the other scenarios, so the oracle checks the ledger).

- ``remittance_file(claims)``: one payer's 835 settling ``claims`` claims, uploaded over HTTP,
  adjudicated as ``PayerDesk`` does (payments, CO-45, patient share, denials), after the
  DFT^P03 with which the billing system posted each claim's charges (without them the
  validator knows no claim and parks every remittance event for ``unknown_claim``, posting
  nothing). ``opening_and_file`` splits the two: the charges are sent and settled first,
  then the file alone is timed.
- ``csv_export(rows)``: the satellite clinics' CSV export with ``rows`` rows (a scenario whose
  every appointment goes through the CSV lane, cut to the first ``rows`` changes in time
  order), imported by ``carebus-scheduling import``.
"""

from __future__ import annotations

import datetime as dt
import random

from carebus_scenario.charges import opening_charges
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.day import Day
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.ids import Ids
from carebus_scenario.model import CSV, X12_UPLOAD, Delivery
from carebus_scenario.network import build_network
from carebus_scenario.remittances import PayerDesk, remittance_facts
from carebus_scenario.render import x12

# CSV rows the generator makes per appointment slot per site (measured: 2,625 rows for 40
# sites x 20), to size the scenario a cut is taken from.
_CSV_ROWS_PER_SLOT = 2625 / (40 * 20)


def remittance_file(claims: int, *, sites: int, remittance_site: str, seed: int) -> Scenario:
    config = ScenarioConfig(seed=seed, sites=sites, remittance_site=remittance_site)
    network = build_network(config, random.Random(config.network_seed))
    desk = PayerDesk(random.Random(seed), Ids(config.run_tag), config, network)
    payer = network.payers[0]
    produced = config.day - dt.timedelta(days=3)
    remit = desk.file(payer, payer.edi_id, [desk.claim(payer) for _ in range(claims)], produced)
    day = Day(config, network)
    for claim in desk.billed:
        opening_charges(day, claim)
    name = f"{remit.trace_number}.835"
    delivery = Delivery(
        seq=len(day.deliveries),
        at=dt.datetime.combine(config.day, dt.time(9), tzinfo=dt.UTC),
        channel=X12_UPLOAD,
        lane="x12",
        payload=x12.render_835(remit),
        facts=tuple(remittance_facts(remit, name, remittance_site)),
        label=name,
    )
    return Scenario(config, network, [*day.in_order(), delivery])


def opening_and_file(scenario: Scenario) -> tuple[Scenario, Scenario]:
    """The claims' opening charges, and the 835 file alone."""
    *charges, file = scenario.deliveries
    return (
        Scenario(scenario.config, scenario.network, charges),
        Scenario(scenario.config, scenario.network, [file]),
    )


def csv_export(rows: int, *, sites: int, remittance_site: str, seed: int) -> Scenario:
    per_site = max(1, int(rows / _CSV_ROWS_PER_SLOT / sites * 1.1) + 1)
    config = ScenarioConfig(
        seed=seed,
        sites=sites,
        appointments_per_site=per_site,
        csv_share=1.0,
        fhir_share=0.0,
        remittance_site=remittance_site,
    )
    scenario = generate(config)
    [export] = [d for d in scenario.deliveries if d.channel == CSV]
    if len(export.facts) < rows:
        raise ValueError(f"the export has {len(export.facts)} rows, fewer than {rows}")
    lines = export.payload.split(b"\n")  # the renderer quotes no newline into a field
    assert len(lines) == len(export.facts) + 2, "one line per row, a header and a last newline"
    cut = Delivery(
        seq=0,
        at=export.at,
        channel=CSV,
        lane=export.lane,
        payload=b"\n".join(lines[: rows + 1]) + b"\n",
        facts=export.facts[:rows],
        label=f"CSV export ({rows} rows)",
    )
    return Scenario(config, scenario.network, [cut])
