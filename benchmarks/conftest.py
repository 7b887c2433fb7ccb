"""Benchmarks (`make bench`) use the same real servers as the tests."""

from __future__ import annotations

from tests.conftest import database_url, js, nats_url, private_nats, samples_dir

# Re-exported: pytest finds fixtures among a conftest's attributes.
__all__ = ["database_url", "js", "nats_url", "private_nats", "samples_dir"]
