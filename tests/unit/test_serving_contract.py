"""The target-agnostic serving helpers: the binomial bound of the canary check, summaries, the
cold-start breakdown, and how long to wait for zero."""

from __future__ import annotations

import dataclasses
import math

import pytest

from inferbox.serving import (
    AutoscalingSettings,
    ReplicaTiming,
    binomial_interval,
    cold_start_breakdown,
    idle_wait_s,
    summary,
)

SETTINGS = AutoscalingSettings(0, 3, "concurrency", 4, 0.7, 6, 1, 2.0, True, 2, 0, 1, 0)


def _pmf(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def test_the_canary_interval_has_the_stated_false_failure_rate() -> None:
    low, high = binomial_interval(400, 0.2, 0.001)
    assert (low, high) == (55, 107)
    # Large profiles: the exact interval stays computable (a product of huge binomials overflowed at 1030).
    big_low, big_high = binomial_interval(1030, 0.2, 0.001)
    assert big_low < 206 < big_high
    assert binomial_interval(100_000, 0.2, 0.001)[0] > 19_000
    pmf = _pmf(400, 0.2)
    assert sum(pmf[:low]) <= 0.0005
    assert sum(pmf[high + 1 :]) <= 0.0005
    # ...and it is the tightest such interval: one step in on either side breaks the rate.
    assert sum(pmf[: low + 1]) > 0.0005
    assert sum(pmf[high:]) > 0.0005
    # Power against a canary off by 10 points.
    assert 1 - sum(_pmf(400, 0.3)[low : high + 1]) > 0.9
    assert 1 - sum(_pmf(400, 0.1)[low : high + 1]) > 0.98


def test_degenerate_shares_and_bad_input() -> None:
    assert binomial_interval(100, 1.0, 0.001) == (100, 100)
    assert binomial_interval(100, 0.0, 0.001) == (0, 0)
    with pytest.raises(ValueError, match="bad binomial"):
        binomial_interval(0, 0.5, 0.01)


def test_summary_and_breakdown() -> None:
    assert summary([3.0, 1.0, 2.0]) == {"n": 3, "min": 1.0, "median": 2.0, "p90": 3.0, "max": 3.0}
    replica = ReplicaTiming("r-00001", "r-0", requested_at=100.05, started_at=100.1, ready_at=101.5)
    parts = cold_start_breakdown(100.0, 101.6, replica)
    assert parts == {
        "activation": 0.05,
        "pod_start": 0.05,
        "model_load": 1.4,
        "first_response": 0.1,
        "total": 1.6,
    }
    assert sum(v for k, v in parts.items() if k != "total") == pytest.approx(parts["total"])


def test_the_wait_for_zero_follows_the_settings_but_never_passes_the_deadline() -> None:
    assert idle_wait_s(SETTINGS, deadline_s=30) == 13  # 6 s window + 2 s grace + 5 s slack
    keeps_one = dataclasses.replace(SETTINGS, min_replicas=1)
    assert idle_wait_s(keeps_one, deadline_s=30) == 30
    long_grace = dataclasses.replace(SETTINGS, scale_to_zero_grace_s=120)
    assert idle_wait_s(long_grace, deadline_s=30) == 30
