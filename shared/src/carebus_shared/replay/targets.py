"""Which stage a replay goes into, and which subjects it may republish (pure).

A copy is republished on its own subject into its own stream, so every consumer whose
filter takes that subject receives it. In the topology each stream feeds one stage (the
ERP stream's outcome subjects feed none), so the subjects a replay reads are the target
consumer's filter, narrowed by ``--subject``; a durable consumer of someone else's that
would also receive the copies makes the replay refuse (``others_receiving``). An ordered
stage reads its stream through one durable per subject partition (docs/decisions/030): a
copy keeps its subject, so it reaches the partition its original went to; the replay names
the stage as a whole and its backlog is the sum over the partitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from carebus_shared.jetstream.topology import (
    ERP_POSTER,
    MAPPER,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    ConsumerSpec,
    Topology,
    as_whole,
    partitions_of,
)

# The stages a replay can go into, by the service's name, with the durables they consume.
STAGES: dict[str, tuple[str, ...]] = {
    "masterdata-validator": (VALIDATOR_SCHEDULING, VALIDATOR_BILLING),
    "mapper": (MAPPER,),
    "erp-poster": (ERP_POSTER,),
}
ALIASES = {"validator": "masterdata-validator", "poster": "erp-poster"}


class ReplayRefused(ValueError):
    """The replay cannot go ahead as asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class Target:
    stage: str  # the service
    consumer: ConsumerSpec  # its durable on the stream (a partitioned stage as a whole)
    subject: str  # what is read and republished
    # The durables that receive the copies: the consumer's, or its stage's partitions.
    durables: tuple[str, ...] = field(default=())

    @property
    def receiving(self) -> tuple[str, ...]:
        return self.durables or (self.consumer.durable,)


def _stage(name: str) -> str:
    wanted = ALIASES.get(name, name)
    if wanted in STAGES:
        return wanted
    for stage, durables in STAGES.items():
        if name in durables or any(name in partitions_of(d) for d in durables):
            return stage
    choices = ", ".join([*STAGES, *ALIASES])
    raise ReplayRefused(f"unknown stage {name!r}; one of: {choices}")


def resolve(
    into: str, stream: str, subject: str | None = None, topology: Topology = TOPOLOGY
) -> Target:
    """The consumer of stage ``into`` on ``stream`` and the subject filter to replay."""
    stage = _stage(into)
    names = {spec.name for spec in topology.streams}
    if stream not in names:
        raise ReplayRefused(f"unknown stream {stream!r}; one of: {', '.join(sorted(names))}")
    consumers = [c for c in topology.consumers if c.stage in STAGES[stage]]
    found = [c for c in consumers if c.stream == stream]
    if not found:
        streams = ", ".join(sorted({c.stream for c in consumers}))
        raise ReplayRefused(f"{stage} does not consume {stream}; it consumes {streams}")
    consumer = as_whole(found[0].stage, topology)
    if len(consumer.filter_subjects) != 1:  # every stage's consumer has one filter today
        raise ReplayRefused(f"{consumer.durable} has several filters; give --subject")
    narrowed = consumer.filter_subjects[0]
    if subject is not None:
        both = intersect(narrowed, subject)
        if both is None:
            raise ReplayRefused(
                f"--subject {subject} is not among what {consumer.durable} takes ({narrowed})"
            )
        narrowed = both
    return Target(stage, consumer, narrowed, tuple(c.durable for c in found))


def intersect(a: str, b: str) -> str | None:
    """The subjects both NATS filters take, as one filter; None when they share none.

    Token by token: ``*`` takes any one token, ``>`` the rest (one token or more)."""
    left, right = a.split("."), b.split(".")
    out: list[str] = []
    for i in range(max(len(left), len(right))):  # bounded by the longer filter
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x == ">" or y == ">":
            rest = right[i:] if x == ">" else left[i:]
            if not rest:
                return None  # '>' needs at least one token
            out.extend(rest)
            return ".".join(out)
        if x is None or y is None:
            return None  # one filter is longer and the other has no '>'
        if x == "*":
            out.append(y)
        elif y in ("*", x):
            out.append(x)
        else:
            return None
    return ".".join(out)


@dataclass(frozen=True)
class OtherConsumer:
    name: str
    filters: tuple[str, ...]  # empty: the whole stream


def others_receiving(
    target: Target, consumers: Iterable[OtherConsumer], topology: Topology = TOPOLOGY
) -> list[OtherConsumer]:
    """The durable consumers besides the target that would receive the copies too.

    Observers off the pipeline's path (the ops console's tracker) are left out: they keep one
    step per event id, so a copy adds nothing there (docs/decisions/018)."""
    observers = {spec.durable for spec in topology.consumers if not spec.pipeline}
    return [
        c
        for c in consumers
        if c.name not in target.receiving
        and c.name not in observers
        and (not c.filters or any(intersect(f, target.subject) for f in c.filters))
    ]


def refusal_for_others(target: Target, others: Sequence[OtherConsumer]) -> str:
    names = ", ".join(f"{c.name} ({', '.join(c.filters) or 'every subject'})" for c in others)
    return (
        f"{target.consumer.stream} also feeds {names}: the copies would reach "
        f"{'it' if len(others) == 1 else 'them'} as well as {target.consumer.durable}. "
        "Narrow --subject to what only the target takes, or replay when that consumer is gone."
    )
