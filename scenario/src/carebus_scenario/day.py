"""What every part of a generated day shares: the one random stream, ids, the clock, and the
inputs sent so far.

The parts (schedule, scheduling feed, billing, remittances, faults) draw from ``rng`` in turn,
so the order in which :func:`carebus_scenario.generator.generate` calls them is part of what
a seed yields.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TypeVar
from zoneinfo import ZoneInfo

from carebus_scenario.config import ScenarioConfig
from carebus_scenario.ids import Ids
from carebus_scenario.model import Delivery
from carebus_scenario.network import Network, Site

T = TypeVar("T")


class Day:
    def __init__(self, config: ScenarioConfig, network: Network) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.network = network
        self.ids = Ids(config.run_tag)
        self.deliveries: list[Delivery] = []

    def add(self, delivery: Delivery) -> Delivery:
        delivery.seq = len(self.deliveries)
        self.deliveries.append(delivery)
        return delivery

    def in_order(self) -> list[Delivery]:
        """The deliveries by send time (ties in the order they were made), numbered so."""
        self.deliveries.sort(key=lambda d: (d.at, d.seq))
        for seq, delivery in enumerate(self.deliveries):
            delivery.seq = seq
        return self.deliveries

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def pick_share(self, population: list[T], share: float) -> list[T]:
        """About ``share`` of the population, at least one when the share is positive."""
        if share <= 0 or not population:
            return []
        count = min(len(population), max(1, round(share * len(population))))
        return self.rng.sample(population, count)

    def at(self, site: Site, minutes: float, day: dt.date | None = None) -> dt.datetime:
        """``minutes`` after midnight at the site, on the scenario's day unless given."""
        base = dt.datetime.combine(day or self.config.day, dt.time(), tzinfo=ZoneInfo(site.zone))
        return (base + dt.timedelta(minutes=minutes)).replace(microsecond=0)
