"""What the embedded autoscaler counts as a revision's concurrency: requests in flight at its replicas'
sidecars (Knative's KPA counts them at each pod's queue-proxy), whoever sent them; not the gateway's
gauge, which never sees a request whose body it is still buffering, nor callers inside the mesh."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from inferbox.embedded.autoscaler import Decider, LoadWindow
from inferbox.embedded.events import EventLog
from inferbox.embedded.knobs import Knobs
from inferbox.embedded.network import Pod
from inferbox.embedded.quota import QuotaExceeded
from inferbox.embedded.serving import RevisionState, ServingControlPlane, revision_in_flight
from inferbox.embedded.workloads import WorkloadSpec, revision_workload
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)
MODEL = ("tenant-a", "sklearn-iris")


@dataclass
class FakeReplica:
    workload: WorkloadSpec
    index: int
    pod: Pod
    ready_at: float | None = 0.0
    sidecar: object | None = "sidecar"
    draining: bool = False

    @property
    def name(self) -> str:
        return f"{self.workload.component}-{self.index}"


@dataclass
class FakeDeployer:
    lock: threading.RLock = field(default_factory=threading.RLock)
    running: list[FakeReplica] = field(default_factory=list)
    asked: int = 0

    def when_removing(self, hook: object) -> None:
        return None

    def replicas(self, component: str) -> list[FakeReplica]:
        return [r for r in self.running if r.workload.component == component]

    def start_replica(self, spec: WorkloadSpec) -> None:
        self.asked += 1
        raise QuotaExceeded(spec.namespace, "a test replica is never started")


class FakeActivator:
    def held(self, key: str) -> int:
        return 0

    def replicas_changed(self, key: str) -> None:
        return None

    def stop(self) -> None:
        return None


def plane_with_one_replica(tmp_path: Path) -> tuple[ServingControlPlane, FakeDeployer, RevisionState]:
    deployer = FakeDeployer()
    plane = ServingControlPlane(
        MANIFESTS,
        cast(Any, None),
        cast(Any, deployer),
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        Knobs(),
        EventLog(tmp_path),
        tmp_path,
    )
    plane.activator = cast(Any, FakeActivator())
    model = plane.plans[MODEL]
    isvc = MANIFESTS.get("InferenceService", MODEL[1], MODEL[0])
    assert isvc is not None
    rev = next(r for r in model.revisions if model.traffic(False)[r.suffix] > 0)
    spec = revision_workload(isvc, rev.predictor, rev.suffix)
    now = time.monotonic()
    state = RevisionState(
        model, rev, spec, Decider(model.settings, now - 60), LoadWindow(model.settings.stable_window_s + 5), ("x", 1)
    )
    plane.revisions = {state.key: state}
    deployer.running.append(FakeReplica(spec, 0, Pod("p0", "198.18.0.9")))
    # Nothing at the gateway: it buffers the bodies, or the callers are inside the mesh.
    plane.gateway_counters = lambda: {state.cluster: (0, 0)}  # type: ignore[method-assign]
    return plane, deployer, state


def test_in_mesh_requests_in_flight_at_the_replicas_scale_a_revision_out(tmp_path: Path) -> None:
    plane, _, state = plane_with_one_replica(tmp_path)
    target = state.model.settings.per_replica_target
    in_flight = int(3 * target) + 1
    plane.read_in_flight = lambda pod: in_flight
    try:
        plane.reconcile()
    finally:
        plane.stop()
    assert state.load.samples[-1][1] == in_flight, "the sidecar's in-flight requests were not counted"
    assert state.desired >= 2, f"{in_flight} requests in flight (target {target:g}) asked for {state.desired}"


def test_a_replica_whose_sidecar_does_not_answer_counts_zero_and_the_tick_goes_on(tmp_path: Path) -> None:
    plane, deployer, state = plane_with_one_replica(tmp_path)
    deployer.running.append(FakeReplica(state.spec, 1, Pod("p1", "198.18.0.10")))

    def read(pod: Pod) -> int:
        if pod.name == "p1":
            raise ConnectionRefusedError("the replica is going away")
        return 2

    plane.read_in_flight = read
    try:
        plane.reconcile()
    finally:
        plane.stop()
    assert state.load.samples[-1][1] == 2


@pytest.mark.parametrize(
    ("at_replicas", "held", "gateway", "expected"),
    [(5, 0, 0, 5), (2, 3, 9, 5), (None, 4, 7, 7)],
)
def test_revision_in_flight(at_replicas: int | None, held: int, gateway: int, expected: int) -> None:
    # Sidecars' counts plus the activator's held ones; the gateway's gauge only without sidecars.
    assert revision_in_flight(at_replicas, held, gateway) == expected
