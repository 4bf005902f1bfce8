"""Knative's KPA decisions for one revision, as the embedded autoscaler makes them (no I/O here).

Inputs per tick: the revision's observed load (requests in flight at its replicas, counted by their
sidecars as Knative counts them at each pod's queue-proxy, plus those the activator holds; and the
gateway's request counter), its ready replicas, and
whether it receives traffic. Output: the replicas it should have, and whether the activator must be
in its path. The rules follow Knative Serving 1.18's KPA:

- desired = ceil(observed / (target x utilization)) over the stable window, and over the panic
  window (a fraction of it, at least 1 s); a scale-down is limited to ready / max-scale-down-rate;
- panic mode: when the panic window asks for at least panic-threshold x the ready replicas, scale
  out at once and do not scale in until a whole stable window has passed without that;
- bounds: minReplicas / maxReplicas (min only for a revision that receives traffic);
- scale to zero: once a revision that has been active for a stable window sees no load for a whole
  stable window it becomes inactive (the activator enters its path); after the grace period (and
  the pod retention period since its last request) its replicas go; a request while inactive makes
  it active again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from inferbox.serving import AutoscalingSettings


class Activity(StrEnum):
    ACTIVE = "active"  # replicas serve; the activator is out of the path (unless burst capacity asks)
    INACTIVE = "inactive"  # no load for a stable window: the activator is in the path, replicas linger
    ZERO = "zero"  # no replicas; the activator holds requests until one is ready


@dataclass
class LoadWindow:
    """A revision's load samples: (time, requests in flight, requests seen so far)."""

    horizon_s: float
    samples: deque[tuple[float, float, int]] = field(default_factory=deque)
    last_traffic_at: float | None = None

    def record(self, now: float, in_flight: float, total: int) -> None:
        previous = self.samples[-1][2] if self.samples else None
        if in_flight > 0 or (previous is not None and total > previous):
            self.last_traffic_at = now
        self.samples.append((now, in_flight, total))
        while self.samples and self.samples[0][0] < now - self.horizon_s:
            self.samples.popleft()

    def concurrency(self, now: float, window_s: float) -> float:
        """Average requests in flight over the last ``window_s`` seconds."""
        values = [c for t, c, _ in self.samples if t > now - window_s]
        return sum(values) / len(values) if values else 0.0

    def rps(self, now: float, window_s: float) -> float:
        """Requests per second seen over the last ``window_s`` seconds."""
        inside = [(t, n) for t, _, n in self.samples if t > now - window_s]
        if len(inside) < 2:
            return 0.0
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return max(0, n1 - n0) / max(t1 - t0, 1e-3)

    def observed(self, metric: str, now: float, window_s: float) -> float:
        return self.rps(now, window_s) if metric == "rps" else self.concurrency(now, window_s)

    def traffic_within(self, now: float, window_s: float) -> bool:
        return self.last_traffic_at is not None and now - self.last_traffic_at < window_s


@dataclass
class Decision:
    desired: int
    activity: Activity
    activator_in_path: bool
    panicking: bool
    stable_load: float
    panic_load: float


@dataclass
class Decider:
    settings: AutoscalingSettings
    created_at: float
    activity: Activity = Activity.ACTIVE
    active_since: float = 0.0
    inactive_since: float | None = None
    panic_since: float | None = None
    max_panic_pods: int = 0

    def __post_init__(self) -> None:
        self.active_since = self.created_at

    def bounds(self, reachable: bool, min_override: int | None, max_override: int | None) -> tuple[int, int]:
        low = self.settings.min_replicas if min_override is None else min_override
        high = self.settings.max_replicas if max_override is None else max_override
        return (low if reachable else 0), high

    def decide(
        self,
        now: float,
        load: LoadWindow,
        ready: int,
        current: int,
        reachable: bool,
        held: int = 0,
        min_override: int | None = None,
        max_override: int | None = None,
    ) -> Decision:
        """``ready``: ready replicas; ``current``: replicas that exist (starting or ready);
        ``held``: requests the activator holds right now (its poke, between ticks)."""
        s = self.settings
        per_replica = s.per_replica_target
        stable = load.observed(s.metric, now, s.stable_window_s)
        panic = load.observed(s.metric, now, s.panic_window_s)
        if s.metric == "concurrency":
            panic = max(panic, float(held))
        pods = max(1, ready)
        max_up = math.ceil(1000.0 * pods)
        max_down = math.floor(pods / s.max_scale_down_rate) if reachable and ready else 0
        stable_pods = min(max(math.ceil(stable / per_replica), max_down), max_up)
        panic_pods = min(max(math.ceil(panic / per_replica), max_down), max_up)
        over = math.ceil(panic / per_replica) / pods >= s.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since > s.stable_window_s:
            self.panic_since, self.max_panic_pods = None, 0
        desired = stable_pods
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, stable_pods, panic_pods)
            desired = self.max_panic_pods
        if desired == 0 and (held or load.traffic_within(now, s.stable_window_s)):
            # Any request within the stable window averages to more than zero: one replica (Knative
            # rounds the average up); a held request is the activator's poke.
            desired = 1
        low, high = self.bounds(reachable, min_override, max_override)
        desired = max(desired, low)
        if high:
            desired = min(desired, high)
        desired = self._scale_to_zero(now, load, desired, current)
        in_path = self.activity is not Activity.ACTIVE or ready == 0 or self._burst_needs_activator(ready, panic)
        return Decision(desired, self.activity, in_path, self.panic_since is not None, stable, panic)

    def _scale_to_zero(self, now: float, load: LoadWindow, desired: int, current: int) -> int:
        s = self.settings
        if desired > 0:
            if self.activity is not Activity.ACTIVE:
                self.activity, self.active_since, self.inactive_since = Activity.ACTIVE, now, None
            return desired
        if not s.scale_to_zero_enabled:
            return 1
        if self.activity is Activity.ACTIVE:
            # Active for at least a stable window, and idle for one (desired is 0): inactive.
            if now - self.active_since >= s.stable_window_s:
                self.activity, self.inactive_since = Activity.INACTIVE, now
            return current
        if self.activity is Activity.INACTIVE:
            assert self.inactive_since is not None
            retained = load.traffic_within(now, s.scale_to_zero_retention_s)
            if now - self.inactive_since >= s.scale_to_zero_grace_s and not retained:
                self.activity = Activity.ZERO
                return 0
            return current
        return 0

    def _burst_needs_activator(self, ready: int, panic_load: float) -> bool:
        capacity = self.settings.target_burst_capacity
        if capacity == 0:
            return False
        if capacity < 0:
            return True
        # Knative: excess burst capacity = ready x target - load - burst capacity; negative keeps
        # the activator in the path to absorb bursts.
        return math.floor(ready * self.settings.target - panic_load - capacity) < 0
