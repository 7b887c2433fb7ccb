"""`make bench`: benchmarks, collected from ``bench_*.py`` (never part of ``make test``).

A package, like ``tests``: its modules import each other as ``benchmarks.<module>`` and the
tests' helpers as ``tests.support.<module>``, from the repository root (pytest's
``pythonpath``, or ``python -m benchmarks.<module>`` there).
"""
