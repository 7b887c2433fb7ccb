"""Shadow replay over a recorded VALIDATED stream (real NATS) with a changed rule: the report
shows exactly the expected differences, and nothing is published or left behind."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.billing import CarcGroup
from carebus_mapper.adapters.rule_files import load_rule_set
from carebus_mapper.adapters.stream_window import Window
from carebus_mapper.handlers.shadow import shadow_replay
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support.mapper import (
    adjustment,
    appointment,
    charge,
    copy_default_rules,
    payment,
    validate,
)

CHARGES = [1000, 2550, 99999]


@pytest.fixture
async def recorded(private_nats: NatsServer) -> AsyncIterator[tuple[JetStreamContext, list[int]]]:
    """A VALIDATED stream holding a day's mix of events; returns their stream sequences."""
    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    await provision(js, TOPOLOGY)
    events: list[Any] = [
        validate(appointment(s.AppointmentBooked, "A1", 1)),
        *(validate(charge(f"CH-{i}", amount)) for i, amount in enumerate(CHARGES)),
        validate(charge("CH-0", CHARGES[0], reversed_=True, version=2)),
        validate(charge("CH-SP", 4000, payer_code=None)),  # self-pay: another rule, unchanged
        validate(payment("PAY-1", 8000)),
        validate(adjustment("ADJ-1", 2500, CarcGroup.CONTRACTUAL)),
        validate(appointment(s.AppointmentCancelled, "A1", 2)),
    ]
    sequences = []
    for event in events:
        ack = await js.publish(subject_for(event), encode(event), headers=headers_for(event))
        sequences.append(ack.seq)
    yield js, sequences
    await nc.close()


def _candidate(tmp_path: Path) -> Path:
    """Payer-billed charges move to a new revenue account, and the version is bumped."""
    rules = copy_default_rules(tmp_path / "candidate")
    charges = (rules / "charges.toml").read_text()
    marker = 'id = "charge-posted"\n'
    head, tail = charges.split(marker)
    (rules / "charges.toml").write_text(
        head + marker + tail.replace('credit = "4000"', 'credit = "4010"', 1)
    )
    with (rules / "accounts.toml").open("a") as accounts:
        accounts.write(
            '\n[accounts."4010"]\nname = "Patient service revenue - payers"\nkind = "revenue"\n'
        )
    meta = (rules / "ruleset.toml").read_text()
    (rules / "ruleset.toml").write_text(
        meta.replace('version = "2025.03.2"', 'version = "2025.04.1"')
    )
    return rules


async def test_shadow_replay_shows_the_expected_differences(
    recorded: tuple[JetStreamContext, list[int]], tmp_path: Path
) -> None:
    js, sequences = recorded
    current, candidate = load_rule_set(), load_rule_set(_candidate(tmp_path))
    consumers_before = (await js.stream_info("VALIDATED")).state.consumer_count
    report = await shadow_replay(js, current, candidate, Window(sequences[0], sequences[-1]))

    assert report.events == len(sequences)
    assert (report.first_sequence, report.last_sequence) == (sequences[0], sequences[-1])
    # Every event still maps; only where the payer-billed charges land has changed:
    # three charges, and the reversal of CH-0 (a mirror follows the charge rules).
    assert report.current_outcomes == report.candidate_outcomes == {"journal": len(sequences)}
    assert report.differing == 4
    net = sum(CHARGES) - CHARGES[0]
    assert [(key, cur, cand, delta) for key, cur, cand, delta in report.account_deltas()] == [
        (("4000", "USD"), -(net + 4000), -4000, net),
        (("4010", "USD"), 0, -net, -net),
    ]
    first = report.examples[0]
    assert (first.sequence, first.current_rule, first.candidate_rule) == (
        sequences[1],
        "charge-posted",
        "charge-posted",
    )
    assert first.current_journal is not None
    assert first.candidate_journal is not None
    assert [x.account for x in first.current_journal.lines] == ["1200", "4000"]
    assert [x.account for x in first.candidate_journal.lines] == ["1200", "4010"]
    assert first.candidate_journal.rule_set_version == "2025.04.1"

    # Nothing published, no consumer left behind.
    assert (await js.stream_info("ERP")).state.messages == 0
    await asyncio.sleep(0.1)
    assert (await js.stream_info("VALIDATED")).state.consumer_count == consumers_before


async def test_a_window_selects_by_sequence_and_by_time(
    recorded: tuple[JetStreamContext, list[int]],
) -> None:
    js, sequences = recorded
    rules = load_rule_set()
    part = await shadow_replay(js, rules, rules, Window(sequences[2], sequences[4]))
    assert (part.events, part.first_sequence, part.last_sequence) == (3, sequences[2], sequences[4])
    assert part.differing == 0
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    everything = await shadow_replay(js, rules, rules, Window(since=since))
    assert everything.events == len(sequences)
    future = await shadow_replay(js, rules, rules, Window(from_seq=sequences[-1] + 100))
    assert future.events == 0


def test_shadow_command_prints_the_diff_and_publishes_nothing(
    recorded: tuple[JetStreamContext, list[int]], private_nats: NatsServer, tmp_path: Path
) -> None:
    _, sequences = recorded
    candidate = _candidate(tmp_path)
    command = [
        sys.executable, "-m", "carebus_mapper.entrypoints.cli", "shadow",
        "--rules", str(candidate), "--from-seq", str(sequences[0]), "--to-seq", str(sequences[-1]),
        "--nats-url", private_nats.url,
    ]  # fmt: skip
    text = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    net = sum(CHARGES) - CHARGES[0]
    assert "current rules 2025.03.2  vs  candidate rules 2025.04.1" in text
    assert "events whose result differs: 4" in text
    assert f"  4010      USD               0 {-net:>14} {-net:>14}" in text
    assert "rule charge-posted" in text
    as_json = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    summary = json.loads(as_json)
    assert summary["differing"] == 4
    assert {row["account"]: row["delta"] for row in summary["account_deltas"]} == {
        "4000": net,
        "4010": -net,
    }

    async def erp_messages() -> int:
        nc = await nats.connect(private_nats.url)
        try:
            return (await nc.jetstream().stream_info("ERP")).state.messages
        finally:
            await nc.close()

    assert asyncio.run(erp_messages()) == 0
