"""Benchmarks (`make bench`) use the same real servers as the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_TESTS_CONFTEST = Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("carebus_tests_conftest", _TESTS_CONFTEST)
assert _spec is not None
assert _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["carebus_tests_conftest"] = _module
_spec.loader.exec_module(_module)

# Re-export the server fixtures (nats_url, database_url, private_nats, js, samples_dir).
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("_")})
