"""The serving part of the platform contract: revisions, replica counts, autoscaling settings, the
timing of replicas (for cold-start breakdowns), and helpers the serving checks share.

Target-agnostic: the embedded target and the cluster targets both implement it. Times are wall-clock
seconds (``time.time()``), so that a client's send and receive times and the platform's replica
events can be put on one axis (on a cluster, Kubernetes records them with one-second resolution).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from inferbox.topology import Model
from inferbox.waiting import eventually


@dataclass(frozen=True)
class AutoscalingSettings:
    """How the platform autoscales one model's revisions (Knative's KPA), as it applies them.

    Read from the platform (the InferenceService and Knative's ``config-autoscaler``): the checks use
    these to know what the platform is configured to do (how long to wait, how much load is "above
    target"); what it must guarantee comes from the conformance profile.
    """

    min_replicas: int
    max_replicas: int  # 0: no upper bound
    metric: str  # "concurrency" or "rps"
    target: float  # per replica, before the utilization fraction
    target_utilization: float  # fraction of the target the autoscaler aims for (0.7)
    stable_window_s: float
    panic_window_s: float
    panic_threshold: float  # a fraction: 2.0 means 200 % of current capacity
    scale_to_zero_enabled: bool
    scale_to_zero_grace_s: float
    scale_to_zero_retention_s: float
    initial_scale: int
    target_burst_capacity: float  # 0: the activator only at zero; -1: always in the path
    max_scale_down_rate: float = 2.0

    @property
    def per_replica_target(self) -> float:
        """The load one replica is meant to carry: target x utilization."""
        return self.target * self.target_utilization

    @property
    def scales_to_zero(self) -> bool:
        return self.scale_to_zero_enabled and self.min_replicas == 0

    @property
    def idle_to_zero_s(self) -> float:
        """Seconds from the last request until the last replica may go (Knative's KPA): a whole
        stable window without traffic marks the revision inactive, then the grace period (or the
        pod retention period, whichever is longer) passes with the activator in the path."""
        if not self.scales_to_zero:
            return math.inf
        return self.stable_window_s + max(self.scale_to_zero_grace_s, self.scale_to_zero_retention_s)

    def replicas_for(self, load: float) -> int:
        """Replicas the autoscaler should run for a steady ``load`` (in the metric's unit), within bounds."""
        wanted = math.ceil(load / self.per_replica_target) if load > 0 else 0
        wanted = max(wanted, self.min_replicas)
        return min(wanted, self.max_replicas) if self.max_replicas else wanted


@dataclass(frozen=True)
class RevisionStatus:
    """One revision of a model: its share of the traffic and its replicas right now."""

    model: str
    tenant: str
    name: str  # Knative's revision name, e.g. sklearn-iris-predictor-00001
    traffic_percent: int  # the share of the model's traffic routed to it
    ready: int  # replicas ready to serve
    total: int  # replicas that exist and are not terminating (starting or ready)
    latest: bool  # the newest revision of the model (the canary while one rolls out)
    terminating: int = 0  # replicas on their way out (draining or stopping): no longer counted, not gone yet


@dataclass(frozen=True)
class ReplicaTiming:
    """One replica's life, for the cold-start breakdown (wall-clock seconds; None: not yet)."""

    revision: str
    replica: str
    requested_at: float  # the platform decided to create it (autoscaler decision, pod created)
    started_at: float | None  # its model server process (container) started
    ready_at: float | None  # it passed its readiness check and may receive requests


class ServingPlatform(Protocol):
    """The part of the contract the helpers below need."""

    def revisions(self, model: Model) -> list[RevisionStatus]: ...


def total_replicas(revisions: Sequence[RevisionStatus]) -> int:
    return sum(r.total for r in revisions)


def wait_for_zero(platform: ServingPlatform, model: Model, timeout_s: float, interval_s: float = 0.1) -> float:
    """Waits until no revision of ``model`` has a replica (none ready, starting or being created);
    returns the seconds waited. One such reading is proof: with no request, nothing starts a replica
    again. Raises AssertionError naming the replicas still there at the deadline."""
    start = time.monotonic()

    def at_zero() -> None:
        revisions = platform.revisions(model)
        assert revisions, f"{model.tenant}/{model.name} reports no revision at all"
        left = {r.name: r.total for r in revisions if r.total}
        assert not left, f"{model.tenant}/{model.name} still has replicas: {left}"

    eventually(at_zero, timeout_s, interval_s)
    return time.monotonic() - start


def wait_until_gone(platform: ServingPlatform, model: Model, timeout_s: float, interval_s: float = 0.1) -> float:
    """Waits until no replica of ``model`` is still on its way out (a replica scaled away drains
    and stops after the count has dropped); returns the seconds waited. Before a cold start is
    timed, so the previous cycle's replicas do not share the machine with it."""
    start = time.monotonic()

    def gone() -> None:
        leaving = {r.name: r.terminating for r in platform.revisions(model) if r.terminating}
        assert not leaving, f"{model.tenant}/{model.name} still has replicas on their way out: {leaving}"

    eventually(gone, timeout_s, interval_s)
    return time.monotonic() - start


def summary(values: Sequence[float]) -> dict[str, float]:
    """min, median, p90 (nearest rank) and max, rounded to milliseconds."""
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {
        "n": len(ordered),
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "p90": round(p90, 3),
        "max": round(ordered[-1], 3),
    }


def cold_start_breakdown(sent_at: float, answered_at: float, replica: ReplicaTiming) -> dict[str, float]:
    """Where a cold start's time went, in seconds, adding up to the total:

    - ``activation``: from the request leaving the client until the platform asked for a replica
      (gateway, activator, autoscaler decision);
    - ``pod_start``: from that request until the model server process started (pod, sidecar, quota);
    - ``model_load``: from process start until ready (imports, loading the model, readiness probe);
    - ``first_response``: from ready until the client had the answer (forwarding and inference).
    """
    started = replica.started_at if replica.started_at is not None else replica.requested_at
    ready = replica.ready_at if replica.ready_at is not None else answered_at
    parts = {
        "activation": max(0.0, replica.requested_at - sent_at),
        "pod_start": max(0.0, started - replica.requested_at),
        "model_load": max(0.0, ready - started),
        "first_response": max(0.0, answered_at - ready),
    }
    return {k: round(v, 3) for k, v in {**parts, "total": answered_at - sent_at}.items()}


def binomial_interval(n: int, p: float, false_failure_rate: float) -> tuple[int, int]:
    """The acceptance interval [lo, hi] for the number of successes in ``n`` trials of probability
    ``p``: a correct platform falls outside it with probability at most ``false_failure_rate``
    (split evenly between the tails, computed from the exact binomial distribution)."""
    if not 0 <= p <= 1 or n <= 0 or not 0 < false_failure_rate < 1:
        raise ValueError(f"bad binomial parameters n={n} p={p} rate={false_failure_rate}")
    from scipy.stats import binom  # about a second to import: only the checks that use it pay for it

    pmf = binom.pmf(np.arange(n + 1), n, p)  # scipy evaluates it in log space: no overflow for large n
    tail = false_failure_rate / 2
    at_most = np.cumsum(pmf)  # P(X <= k)
    at_least_from_top = np.cumsum(pmf[::-1])  # P(X >= n - j)
    lo = int(np.argmax(at_most > tail))  # the first k whose lower tail exceeds the allowance
    hi = n - int(np.argmax(at_least_from_top > tail))
    return lo, hi


def paced(count: int, rate_per_s: float, send: Callable[[int], None]) -> float:
    """Calls ``send(i)`` ``count`` times, never faster than ``rate_per_s``: each call starts at least
    ``1 / rate_per_s`` after the previous one started, so any window of ``w`` seconds holds at most
    ``w * rate_per_s + 1`` calls. A sender that fell behind (a slow answer, a busy machine) does not
    catch up in a burst: a burst could exceed a rate limiter's budget that the average respects,
    and the limiter would then rightly refuse requests that were meant to be served. Returns the
    seconds taken."""
    gap = 1.0 / rate_per_s
    start = previous = time.monotonic()
    for i in range(count):
        if i:
            delay = previous + gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the sender, not waiting on the platform
        previous = time.monotonic()
        send(i)
    return time.monotonic() - start
