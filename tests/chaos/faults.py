"""The fault suite's catalogue: each fault a run of its own on a fresh stack, and the unsafe
runs that prove the checker can fail a run.

``make chaos`` runs :data:`FULL` on the SMALL scenario (3 sites, ~480 events) with the
5-minute PostgreSQL outage; ``make test`` runs :data:`SHORT` on a smaller day (2 sites, ~80
events) with a 10-second outage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from carebus_scenario.config import SMALL, ScenarioConfig

Kind = Literal["crash", "stop", "nats", "postgres", "erp_outage", "poison"]
STAGES = ("masterdata-validator", "mapper", "erp-poster")
ADAPTERS = ("scheduling-adapter", "billing-adapter")
TINY = SMALL.with_(sites=2, appointments_per_site=6)


@dataclass(frozen=True)
class Fault:
    name: str
    kind: Kind
    service: str = ""  # the victim (crash point, SIGSTOP)
    point: str = ""  # tests.chaos.service's crash point
    at: int | None = None  # which arrival at the point fires (None: a third of the way)
    down_s: float = 0.0  # how long the fault lasts (SIGSTOP, NATS, PostgreSQL, the ERP)
    crash_pg: bool = False  # PostgreSQL: SIGKILL and restart at once, not a stop
    connector: Literal["ledger", "http"] = "ledger"
    replicas: int = 1  # of the victim
    poison: int = 0  # poison events published into SCHEDULING
    unsafe: str = ""  # an unsafe setting: the checker must catch a loss or a double post
    unsafe_in: tuple[str, ...] = ()  # the services it is set in (default: the victim)
    config: ScenarioConfig = SMALL
    rate: float | None = 80.0  # events/s offered (None: flat out)

    def unsafely(self, setting: str, *, within: tuple[str, ...] = (), **changes: object) -> Fault:
        changes.setdefault("name", f"{self.name} [unsafe: {setting}]")
        return replace(self, unsafe=setting, unsafe_in=within, **changes)  # type: ignore[arg-type]

    def smaller(self, **changes: object) -> Fault:
        """The same fault on the short version's day."""
        return replace(self, config=TINY, rate=30.0, **changes)  # type: ignore[arg-type]


def _kill(service: str, point: str, what: str, **more: object) -> Fault:
    return Fault(f"SIGKILL {service} {what}", "crash", service=service, point=point, **more)  # type: ignore[arg-type]


SCHEDULING_BEFORE_STORE = _kill("scheduling-adapter", "before_store", "before storing an input")
SCHEDULING_AFTER_STORE = _kill(
    "scheduling-adapter", "after_store", "after storing, before answering"
)
BILLING_BEFORE_STORE = _kill("billing-adapter", "before_store", "before storing an input")
BILLING_AFTER_STORE = _kill("billing-adapter", "after_store", "after storing, before answering")
VALIDATOR_AFTER_FETCH = _kill("masterdata-validator", "after_fetch", "after fetch")
VALIDATOR_BEFORE_ACK = _kill("masterdata-validator", "before_ack", "after commit, before ack")
MAPPER_AFTER_FETCH = _kill("mapper", "after_fetch", "after fetch")
MAPPER_BEFORE_ACK = _kill("mapper", "before_ack", "after commit, before ack")
POSTER_AFTER_FETCH = _kill("erp-poster", "after_fetch", "after fetch")
POSTER_BEFORE_ACK = _kill("erp-poster", "before_ack", "after commit, before ack")
POSTER_AFTER_ERP_CALL = _kill(
    "erp-poster", "after_erp_call", "(http) after the ERP call, before recording it",
    connector="http",
)  # fmt: skip
# The stopped one comes back after its batch went to the other replica (the mapper has one:
# its batch waits for it, the copies JetStream redelivers meanwhile are fenced).
POSTER_STOPPED = Fault(
    "SIGSTOP erp-poster past its ack deadline (2 replicas)", "stop", service="erp-poster",
    point="after_fetch", down_s=10.0, replicas=2,
)  # fmt: skip
MAPPER_STOPPED = Fault(
    "SIGSTOP mapper past its ack deadline", "stop", service="mapper", point="after_fetch",
    down_s=10.0,
)  # fmt: skip
# Longer than a publish may wait for its ack (10 s): adapters answer nothing, stages see
# their publishes fail.
NATS_RESTART = Fault("NATS SIGKILL, back after 10 s", "nats", down_s=10.0)
PG_RESTART = Fault("PostgreSQL SIGKILL and restart", "postgres", crash_pg=True)
# The outage begins when the poster stops itself holding its first batch (it then goes on).
PG_OUTAGE = Fault(
    "PostgreSQL outage 5 min", "postgres", service="erp-poster", point="after_fetch", at=1,
    down_s=300.0,
)  # fmt: skip
ERP_DOWN = Fault(
    "ERP sandbox down past the retry budget, then re-driven", "erp_outage", connector="http",
    down_s=12.0,
)  # fmt: skip
POISON = Fault("poison events in full batches (validator)", "poison", poison=3)

SAFE = (
    SCHEDULING_BEFORE_STORE, SCHEDULING_AFTER_STORE, BILLING_BEFORE_STORE, BILLING_AFTER_STORE,
    VALIDATOR_AFTER_FETCH, VALIDATOR_BEFORE_ACK, MAPPER_AFTER_FETCH, MAPPER_BEFORE_ACK,
    POSTER_AFTER_FETCH, POSTER_BEFORE_ACK, POSTER_AFTER_ERP_CALL, POSTER_STOPPED, MAPPER_STOPPED,
    NATS_RESTART, PG_RESTART, PG_OUTAGE, ERP_DOWN, POISON,
)  # fmt: skip
# One unsafe run per kind of fault (per crash window), each with the setting that makes that
# fault harmful. The PostgreSQL outage's unsafe run is 30 s: it loses what it loses at once.
UNSAFE = (
    SCHEDULING_BEFORE_STORE.unsafely("answer_before_stored"),
    BILLING_AFTER_STORE.unsafely("unstable_event_ids"),
    # Flat out, so that the batch it loses is large: a lost event that posts nothing (a
    # check-in) leaves no trace in the ledger.
    MAPPER_AFTER_FETCH.unsafely("ack_on_fetch", rate=None, at=2),
    POSTER_BEFORE_ACK.unsafely("poster_inbox_off"),
    POSTER_AFTER_ERP_CALL.unsafely("poster_inbox_off"),
    POSTER_STOPPED.unsafely("poster_inbox_off"),
    NATS_RESTART.unsafely("answer_before_stored", within=ADAPTERS),
    # Flat out: a restart of 0.4 s meets a query in flight only when the stages are busy (at
    # 80 events/s the pools reconnected unnoticed and nothing was dropped, most runs).
    PG_RESTART.unsafely("drop_on_dependency_error", within=STAGES, rate=None),
    PG_OUTAGE.unsafely("drop_on_dependency_error", within=STAGES, down_s=30.0,
                       name="PostgreSQL outage 30 s [unsafe: drop_on_dependency_error]"),
    ERP_DOWN.unsafely("drop_exhausted", within=("erp-poster",)),
    POISON.unsafely("skip_failed_batch", within=("masterdata-validator",)),
)  # fmt: skip
FULL = SAFE + UNSAFE

SHORT = (
    POSTER_BEFORE_ACK.smaller(),
    VALIDATOR_AFTER_FETCH.smaller(at=2),
    PG_OUTAGE.smaller(down_s=10.0, name="PostgreSQL outage 10 s"),
    POSTER_BEFORE_ACK.unsafely("poster_inbox_off").smaller(),
)
