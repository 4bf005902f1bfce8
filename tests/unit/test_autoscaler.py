"""The embedded autoscaler's KPA decisions, tick by tick, on a simulated clock."""

from __future__ import annotations

import dataclasses

from inferbox.embedded.autoscaler import Activity, Decider, LoadWindow
from inferbox.serving import AutoscalingSettings

SETTINGS = AutoscalingSettings(
    min_replicas=0,
    max_replicas=3,
    metric="concurrency",
    target=4,
    target_utilization=0.7,
    stable_window_s=6,
    panic_window_s=1,
    panic_threshold=2.0,
    scale_to_zero_enabled=True,
    scale_to_zero_grace_s=2,
    scale_to_zero_retention_s=0,
    initial_scale=1,
    target_burst_capacity=0,
)
TICK = 0.25


class Revision:
    """One revision: its decider, its load and its replicas (which become ready at once)."""

    def __init__(self, settings: AutoscalingSettings = SETTINGS, replicas: int = 1) -> None:
        self.decider = Decider(settings, 0.0)
        self.load = LoadWindow(horizon_s=settings.stable_window_s + 5)
        self.replicas = replicas
        self.total = 0
        self.now = 0.0

    def run(self, seconds: float, in_flight: float = 0, rps: float = 0, reachable: bool = True, held: int = 0) -> None:
        for _ in range(round(seconds / TICK)):
            self.now += TICK
            self.total += round(rps * TICK)
            self.load.record(self.now, in_flight, self.total)
            decision = self.decider.decide(self.now, self.load, self.replicas, self.replicas, reachable, held)
            self.replicas = decision.desired
            self.in_path = decision.activator_in_path


def test_load_above_target_scales_out_within_max() -> None:
    rev = Revision()
    rev.run(3, in_flight=7, rps=7)
    assert rev.replicas == 3  # ceil(7 / 2.8), capped by maxReplicas 3
    rev.run(3, in_flight=4, rps=4)
    assert rev.replicas == 3  # panic mode: no scale-in until the surge left the stable window


def test_an_idle_revision_goes_inactive_after_a_stable_window_then_to_zero_after_the_grace_period() -> None:
    rev = Revision()
    rev.run(2, in_flight=1, rps=1)
    rev.run(5.5)  # idle, but not a whole stable window yet
    assert (rev.decider.activity, rev.replicas, rev.in_path) == (Activity.ACTIVE, 1, False)
    rev.run(1)
    assert (rev.decider.activity, rev.replicas, rev.in_path) == (Activity.INACTIVE, 1, True)
    rev.run(2)
    assert (rev.decider.activity, rev.replicas) == (Activity.ZERO, 0)


def test_a_request_while_inactive_makes_the_revision_active_again() -> None:
    rev = Revision()
    rev.run(6.5)
    assert rev.decider.activity is Activity.INACTIVE
    rev.run(0.5, in_flight=0, rps=4)  # fast requests: seen by the counter, not the in-flight samples
    assert (rev.decider.activity, rev.replicas) == (Activity.ACTIVE, 1)


def test_a_held_request_at_zero_asks_for_replicas_at_once() -> None:
    rev = Revision()
    rev.run(9)
    assert rev.replicas == 0
    rev.run(TICK, held=1)
    assert (rev.decider.activity, rev.replicas) == (Activity.ACTIVE, 1)
    burst = Revision()
    burst.run(9)
    burst.run(TICK, held=6)
    assert burst.replicas == 3  # ceil(6 / 2.8)


def test_min_replicas_keeps_a_routed_revision_warm_but_not_an_unrouted_one() -> None:
    warm = Revision(dataclasses.replace(SETTINGS, min_replicas=1))
    warm.run(20)
    assert warm.replicas == 1
    unrouted = Revision(dataclasses.replace(SETTINGS, min_replicas=1))
    unrouted.run(20, reachable=False)
    assert unrouted.replicas == 0


def test_without_scale_to_zero_one_replica_stays() -> None:
    rev = Revision(dataclasses.replace(SETTINGS, scale_to_zero_enabled=False))
    rev.run(20)
    assert rev.replicas == 1


def test_retention_keeps_the_last_replica_after_the_last_request() -> None:
    rev = Revision(dataclasses.replace(SETTINGS, scale_to_zero_retention_s=12))
    rev.run(1, in_flight=1, rps=1)
    rev.run(10)
    assert rev.replicas == 1
    rev.run(3)
    assert rev.replicas == 0


def test_burst_capacity_decides_whether_the_activator_stays_in_the_path() -> None:
    always = Revision(dataclasses.replace(SETTINGS, target_burst_capacity=-1))
    always.run(1, in_flight=1, rps=1)
    assert always.in_path
    only_at_zero = Revision()
    only_at_zero.run(1, in_flight=1, rps=1)
    assert not only_at_zero.in_path
    headroom = Revision(dataclasses.replace(SETTINGS, target_burst_capacity=10))
    headroom.run(1, in_flight=1, rps=1)
    assert headroom.in_path  # 1 replica x 4 - 1 in flight < 10


def test_rps_metric_scales_on_request_rate() -> None:
    rev = Revision(dataclasses.replace(SETTINGS, metric="rps", target=10))
    rev.run(8, in_flight=0, rps=20)
    assert rev.replicas == 3  # ceil(20 / 7)


def test_load_window_averages() -> None:
    window = LoadWindow(horizon_s=10)
    for i in range(8):
        window.record(i * 0.5, float(i % 2), i * 3)
    assert window.concurrency(3.5, 2.0) == 0.5
    assert window.rps(3.5, 10.0) == 6.0
    assert window.traffic_within(3.5, 1.0)
