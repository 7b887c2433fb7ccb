"""Test-only topologies around partitioned stages (docs/decisions/030)."""

from __future__ import annotations

from dataclasses import replace

from carebus_shared.jetstream.topology import Topology, as_whole


def whole_stage(topology: Topology, stage: str) -> Topology:
    """``topology`` with the partitions of ``stage`` as one durable named after the stage,
    reading its whole stream (as before partitions): for tests that fetch events of several
    entities in one batch from it."""
    others = tuple(c for c in topology.consumers if c.stage != stage)
    return replace(topology, consumers=(as_whole(stage, topology), *others))


def unpartitioned(subject: str) -> str:
    """``subject`` without its partition token (the five tokens a test names)."""
    tokens = subject.split(".")
    assert len(tokens) == 6, subject
    assert tokens[5].startswith("p"), subject
    return ".".join(tokens[:5])
