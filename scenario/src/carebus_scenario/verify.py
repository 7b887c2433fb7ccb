"""Expectation against observation: every difference, said so a person can act on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from carebus_scenario.model import BILLING, SCHEDULING
from carebus_scenario.observe import Observation
from carebus_scenario.oracle import Expectation

K = TypeVar("K")


def ledger_differences(expected: Expectation, observed: Observation) -> list[str]:
    problems = []
    for key in sorted(set(expected.ledger) | set(observed.ledger)):
        want = expected.ledger.get(key)
        got = observed.ledger.get(key)
        site, account, currency = key
        w = (want.debit_minor, want.credit_minor) if want else (0, 0)
        g = (got.debit_minor, got.credit_minor) if got else (0, 0)
        if w != g:
            problems.append(
                f"ledger {site} {account} {currency}: expected debit/credit {w[0]}/{w[1]}, "
                f"found {g[0]}/{g[1]}"
            )
    return problems


def _counter_differences(
    what: str, expected: Mapping[K, int], observed: Mapping[K, int]
) -> list[str]:
    return [
        f"{what} {key}: expected {expected.get(key, 0)}, found {observed.get(key, 0)}"
        for key in sorted(set(expected) | set(observed), key=str)
        if expected.get(key, 0) != observed.get(key, 0)
    ]


def differences(
    expected: Expectation, observed: Observation, *, check_streams: bool = True
) -> list[str]:
    """Empty when the suite holds exactly what the oracle says."""
    problems = ledger_differences(expected, observed)
    problems += _counter_differences("journals of site", expected.journals, observed.entries)
    for site, entries in observed.entries.items():
        if observed.journals[site] != entries:
            problems.append(
                f"site {site}: {entries} entries but {observed.journals[site]} journals"
            )
        if observed.sources[site] != entries:
            problems.append(
                f"site {site}: {entries} entries from {observed.sources[site]} source events"
            )
    if observed.unbalanced_entries:
        problems.append(f"{observed.unbalanced_entries} journal entries do not balance")
    problems += _counter_differences("exceptions", expected.exceptions, observed.exceptions)
    problems += _counter_differences("quarantined", expected.quarantine, observed.quarantine)
    if check_streams:
        for stream in (SCHEDULING, BILLING):
            want = expected.stream_events[stream]
            got = observed.stream_messages.get(stream, 0)
            if want != got:
                problems.append(f"stream {stream}: expected {want} distinct events, holds {got}")
    return problems
