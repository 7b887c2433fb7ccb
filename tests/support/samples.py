"""Where the sample messages are, resolved once for every test and benchmark.

``tests/data`` holds the reference samples the tests read (see ``tests/data/PROVENANCE.md``);
``CAREBUS_SAMPLES`` points the tests at another copy with the same layout. A missing folder is
an error, never a skip: importing this module fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("CAREBUS_SAMPLES") or TESTS_DIR / "data")
# The committed outcome of every HL7 v2 sample (tests/hl7 and tests/scheduling compare with it).
HL7_EXPECTATIONS = TESTS_DIR / "hl7" / "sample_expectations.tsv"

_MISSING = [name for name in ("hl7v2", "x12", "fhir-r4") if not (SAMPLES / name).is_dir()]
if _MISSING:
    raise FileNotFoundError(f"no {', '.join(_MISSING)} samples in {SAMPLES} (CAREBUS_SAMPLES?)")

_RB_EXAMPLE = re.compile(r"^\s*#\s{3}([A-Z][A-Z0-9]{2}\|.*)$")


def hl7_sample_inputs() -> dict[str, bytes]:
    """Every raw HL7 v2 sample message, keyed by its path relative to ``SAMPLES``: the
    ``*.hl7`` files, the ``*.hl7.erb`` templates (placeholders left in place) and the
    ``# Example message:`` comment blocks of the Renalware ``*_spec.rb`` files (key suffixed
    ``#example``)."""
    found: dict[str, bytes] = {}
    for path in sorted((SAMPLES / "hl7v2").rglob("*")):
        rel = path.relative_to(SAMPLES).as_posix()
        if path.name.endswith((".hl7", ".hl7.erb")):
            found[rel] = path.read_bytes()
        elif path.name.endswith("_spec.rb"):
            lines = [m[1] for m in map(_RB_EXAMPLE.match, path.read_text().splitlines()) if m]
            if lines:
                found[rel + "#example"] = "\r".join(lines).encode()
    return found
