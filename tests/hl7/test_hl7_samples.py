"""Every SIU, ADT and DFT/BAR sample is accepted or rejected for a specific reason.

The expected outcome per file is committed in ``sample_expectations.tsv``; any change in
behaviour (or a new sample) fails this test.  Regenerate deliberately with
``CAREBUS_WRITE_SAMPLE_EXPECTATIONS=1`` and review the diff.

Inputs: ``hl7_sample_inputs()``: raw ``*.hl7`` files, ``*.hl7.erb`` templates (placeholders
left in place) and the ``# Example message:`` comment blocks of the Renalware ``*_spec.rb``
files.  The ``.js``/``.md`` sources were not copied: their messages are the ``extracted/`` files.
"""

from __future__ import annotations

import os
from collections import Counter

from carebus_billing_adapter.adapters.hl7_dft import map_dft
from carebus_scheduling_adapter.adapters.hl7_siu import map_siu
from carebus_shared.hl7 import Hl7Error, parse_message
from tests.support.samples import HL7_EXPECTATIONS, hl7_sample_inputs

ROUTES = {"SIU": "scheduling", "ADT": "scheduling", "DFT": "billing", "BAR": "billing"}


def _outcome(raw: bytes) -> tuple[str, str, str] | None:
    try:
        message = parse_message(raw)
    except Hl7Error as exc:
        return "none", "rejected", f"{exc.reason}@{exc.location}"
    adapter = ROUTES.get(message.message_code or "")
    if adapter is None:
        return None
    try:
        if adapter == "scheduling":
            appt = map_siu(message, default_tz="America/Chicago")
            return adapter, "accepted", f"{appt.event}/{appt.status}"
        lines = map_dft(message, default_tz="America/Chicago", default_currency="USD")
        return adapter, "accepted", f"lines={len(lines)}"
    except Hl7Error as exc:
        return adapter, "rejected", f"{exc.reason}@{exc.location}"


def _actual() -> dict[str, tuple[str, str, str]]:
    results = {}
    for name, raw in hl7_sample_inputs().items():
        outcome = _outcome(raw)
        if outcome is not None:
            results[name] = outcome
    return results


def _read_expectations() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in HL7_EXPECTATIONS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, adapter, outcome, detail = line.split("\t")
            rows[name] = (adapter, outcome, detail)
    return rows


def test_every_sample_has_its_committed_outcome() -> None:
    actual = _actual()
    if os.environ.get("CAREBUS_WRITE_SAMPLE_EXPECTATIONS"):
        header = "# path\tadapter\toutcome\tdetail (event/status, lines=N or reason@location)\n"
        body = "".join(f"{k}\t{a}\t{o}\t{d}\n" for k, (a, o, d) in sorted(actual.items()))
        HL7_EXPECTATIONS.write_text(header + body)

    counts: Counter[tuple[str, str]] = Counter()
    for name, (_, outcome, _) in actual.items():
        source = name.split("/")[1]
        counts[(source, outcome)] += 1
    print("\nsample outcomes per source:")
    for (source, outcome), n in sorted(counts.items()):
        print(f"  {source:40} {outcome:9} {n}")

    expected = _read_expectations()
    assert sorted(actual) == sorted(expected), "sample set changed: regenerate and review"
    mismatches = {k: (expected[k], v) for k, v in actual.items() if expected[k] != v}
    assert not mismatches
