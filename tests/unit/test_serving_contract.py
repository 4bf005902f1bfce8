"""The target-agnostic serving helpers: the binomial bound of the canary check, summaries, the
cold-start breakdown, waiting for zero and pacing a sender."""

from __future__ import annotations

import itertools
import math
import time

import pytest

from inferbox.serving import (
    AutoscalingSettings,
    ReplicaTiming,
    RevisionStatus,
    binomial_interval,
    cold_start_breakdown,
    paced,
    summary,
    wait_for_zero,
    wait_until_gone,
)
from inferbox.topology import Model

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


def test_a_paced_sender_that_fell_behind_does_not_catch_up_in_a_burst() -> None:
    """A slow answer delays the schedule; the requests after it keep their spacing, so no window
    ever holds more than its share of the rate (a burst could trip the tenant's rate limiter)."""
    starts: list[float] = []

    def send(i: int) -> None:
        starts.append(time.monotonic())
        if i == 2:
            time.sleep(0.3)  # one slow answer, as on a busy machine

    paced(10, 50.0, send)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.02 - 0.002, gaps
    assert gaps[2] >= 0.3


class _Revisions:
    def __init__(self, totals: list[int]) -> None:
        self.totals = totals

    def revisions(self, model: Model) -> list[RevisionStatus]:
        total = self.totals.pop(0) if len(self.totals) > 1 else self.totals[0]
        name = f"{model.name}-predictor-00001"
        return [RevisionStatus(model.name, model.tenant, name, 100, total, total, True, terminating=total)]


MODEL = Model("sklearn-iris", "tenant-a", "sklearn", 0, 3)


def test_one_reading_at_zero_ends_the_wait_and_a_model_that_stays_up_fails_it() -> None:
    waited = wait_for_zero(_Revisions([2, 1, 0]), MODEL, timeout_s=5, interval_s=0.01)
    assert waited < 1
    with pytest.raises(AssertionError, match="still has replicas"):
        wait_for_zero(_Revisions([1]), MODEL, timeout_s=0.1, interval_s=0.01)


def test_replicas_on_their_way_out_are_waited_for_before_a_cold_start_is_timed() -> None:
    assert wait_until_gone(_Revisions([1, 0]), MODEL, timeout_s=5, interval_s=0.01) < 1
    with pytest.raises(AssertionError, match="on their way out"):
        wait_until_gone(_Revisions([1]), MODEL, timeout_s=0.1, interval_s=0.01)
