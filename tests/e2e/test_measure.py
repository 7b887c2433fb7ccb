"""The benchmark's reading of its tail: when the slowest 1 % were accepted."""

from __future__ import annotations

from carebus_scenario.measure import worst_moments


def test_a_stall_shows_as_the_one_moment_the_slowest_were_accepted_at() -> None:
    origin = 1_000.0
    points = [(origin + i * 0.01, 20.0) for i in range(2_000)]  # 20 s of quiet traffic
    points += [(origin + 17.3 + i * 0.01, 300.0) for i in range(15)]  # a stall at 17.3 s
    points += [(origin + 5.6, 250.0)]
    moments = worst_moments(points, p99_ms=200.0, origin=origin)
    assert moments[0] == (17.5, 15)  # 17.30-17.44 s, to the nearest half second
    assert (5.5, 1) in moments
    assert sum(n for _, n in moments) == 16
