"""Hypothesis profiles of the parser fuzz (tests/fuzz), chosen by ``CAREBUS_FUZZ_PROFILE``.

* ``ci`` (the default, what ``make test`` runs): few examples per property, derandomized,
  so a run is repeatable and the folder stays well under a minute on two cores;
* ``fuzz`` (``make fuzz``): thousands of random examples per property.

The profiles are applied to the fuzz properties only (``tests.fuzz.harness.FUZZ``), never
loaded globally, so the other property tests of the suite keep their own settings.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings

_SHARED = {
    # A property draws a sample and mutates it: inputs up to a few hundred KB are the point.
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
    "print_blob": True,
}

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    database=None,
    # Generous for a loaded CI machine; a hang is caught by the harness's own alarm anyway.
    deadline=timedelta(seconds=3),
    **_SHARED,
)
settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=timedelta(seconds=2),
    **_SHARED,
)
