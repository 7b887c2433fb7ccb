"""Helpers shared by the tests (and the benchmarks): import as ``tests.support.<module>``.

Nothing here is collected by pytest. ``echo_stage`` also runs as a process of its own:
``python -m tests.support.echo_stage`` from the repository root.
"""
