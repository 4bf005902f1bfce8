"""The load benchmarks' ground truth: the ideal open-loop client's latencies against the stall
endpoint's schedule, and the endpoint's own schedule (bench/endpoint.py)."""

from __future__ import annotations

import numpy as np

from bench.endpoint import Schedule
from bench.load_accuracy import ideal_stall


def test_the_ideal_client_waits_out_each_freeze() -> None:
    intended, latency = ideal_stall(rate=20, seconds=10, delay_s=0.02, every=100, stall_s=1.0)
    assert intended.size == 200
    # The 100th request (t = 4.95 s) starts a freeze to 5.95 s: the answers due in it leave at its end.
    frozen = (intended >= 4.93) & (intended < 5.93)
    assert np.allclose(latency[frozen], 5.95 - intended[frozen])
    assert latency[frozen].size == 20
    assert np.isclose(latency[frozen].max(), 1.0)
    assert np.allclose(latency[~frozen & (intended < 9.9)], 0.02)
    # The 200th request (t = 9.95 s) starts the second freeze.
    assert np.isclose(latency[-1], 1.0)


def test_the_endpoint_freezes_at_every_nth_arrival_and_merges_overlaps() -> None:
    schedule = Schedule(delay_s=0.01, stall_every=3, stall_s=1.0)
    assert schedule.arrive(0.0) == 0.01
    assert schedule.arrive(0.1) == 0.11
    assert schedule.freezes == []
    schedule.arrive(0.2)
    assert schedule.freezes == [(0.2, 1.2)]
    assert schedule.frozen_until(0.5) == 1.2
    assert schedule.frozen_until(1.2) is None
    for at in (0.3, 0.4, 0.5):  # the 6th arrival, inside the first freeze, extends it
        schedule.arrive(at)
    assert schedule.freezes == [(0.2, 1.5)]
